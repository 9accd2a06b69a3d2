package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/docker"
)

// RemoveDirCommand is the proxy image's subcommand that removes folder trees under a root
// without following symbolic links (images/kamal-proxy/remove.go). The controller runs it to
// delete what accessories leave on a host: the proxy image is one it trusts and knows every
// host has, while an accessory's own image may lack rm or ship any program under that name.
const RemoveDirCommand = "kamal-remove-dir"

// removeMount is where the remover container sees the one host folder it may change.
const removeMount = "/kamal-remove"

// removerLabel marks remover containers.
const removerLabel = kamalv1.LabelPrefix + "remover"

// RemoveOptions is a container of image that runs RemoveDirCommand on paths (relative to the
// host folder dir, which is the only one bound, at removeMount): no network, no shell, the
// paths as arguments. The bind is a mount, not a legacy bind, so a missing dir is an error
// instead of a folder Docker creates.
func RemoveOptions(image, dir string, paths []string, prune bool) (client.ContainerCreateOptions, error) {
	if !path.IsAbs(dir) || path.Clean(dir) != dir || dir == "/" {
		return client.ContainerCreateOptions{}, fmt.Errorf("remove: %q is not a clean absolute folder", dir)
	}
	if len(paths) == 0 {
		return client.ContainerCreateOptions{}, errors.New("remove: no path")
	}
	args := []string{RemoveDirCommand, "--root", removeMount}
	if prune {
		args = append(args, "--prune")
	}
	args = append(args, "--")
	for _, p := range paths {
		if p == "." || !filepath.IsLocal(p) || path.Clean(p) != p {
			return client.ContainerCreateOptions{}, fmt.Errorf("remove: %q is not a clean path inside %s", p, dir)
		}
		args = append(args, removeMount+"/"+p)
	}
	return client.ContainerCreateOptions{
		Config: &container.Config{
			Image: image, Entrypoint: []string{caddyBinary}, Cmd: args,
			User:   "0:0",
			Labels: map[string]string{kamalv1.LabelManagedBy: kamalv1.ManagerName, removerLabel: "true"},
		},
		HostConfig: &container.HostConfig{
			NetworkMode: "none",
			Mounts:      []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: removeMount}},
		},
	}, nil
}

// RemovePaths runs RemoveOptions on a host and waits for it to exit; an exit code other than 0
// is an error that says what the remover said. A dir that does not exist holds nothing to
// remove.
func RemovePaths(ctx context.Context, cli *client.Client, image, dir string, paths []string, prune bool) error {
	opts, err := RemoveOptions(image, dir, paths, prune)
	if err != nil {
		return err
	}
	if _, err := docker.EnsureImage(ctx, cli, image, ""); err != nil {
		return fmt.Errorf("pulling %s for %s: %w", image, RemoveDirCommand, err)
	}
	// A remover whose connection was lost mid-run could not be removed then: it goes with the
	// next one. Only stopped ones, old enough not to be another removal under way.
	_, _ = cli.ContainerPrune(ctx, client.ContainerPruneOptions{Filters: client.Filters{}.Add("label", removerLabel+"=true").Add("until", "10m")})
	created, err := cli.ContainerCreate(ctx, opts)
	if err != nil {
		if isMissingBindSource(err) {
			return nil
		}
		return err
	}
	defer func() {
		_, _ = cli.ContainerRemove(context.WithoutCancel(ctx), created.ID, client.ContainerRemoveOptions{Force: true})
	}()
	wait := cli.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		if isMissingBindSource(err) {
			return nil // removed between create and start
		}
		return err
	}
	select {
	case res := <-wait.Result:
		if res.StatusCode != 0 {
			msg := removerMessage(LastLogLine(ctx, cli, created.ID))
			if msg == "" {
				msg = "no message"
			}
			return fmt.Errorf("%s exited with code %d: %s", RemoveDirCommand, res.StatusCode, msg)
		}
		return nil
	case err := <-wait.Error:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// isMissingBindSource: Docker refuses a bind mount of a path that does not exist.
func isMissingBindSource(err error) bool {
	return err != nil && strings.Contains(err.Error(), "bind source path does not exist")
}

// removerMessage is the message of Caddy's JSON log line, or the line as it is.
func removerMessage(line string) string {
	var entry struct {
		Msg string `json:"msg"`
	}
	if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &entry) == nil && entry.Msg != "" {
		return entry.Msg
	}
	return line
}
