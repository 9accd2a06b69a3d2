package docker

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// Facts reads what status reports about a host's engine.
func Facts(ctx context.Context, cli *client.Client) (kamalv1.ServerFacts, error) {
	info, err := cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return kamalv1.ServerFacts{}, err
	}
	ver, err := cli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return kamalv1.ServerFacts{}, err
	}
	i := info.Info
	return kamalv1.ServerFacts{
		DockerVersion:   ver.Version,
		APIVersion:      cli.ClientVersion(),
		OperatingSystem: i.OperatingSystem,
		KernelVersion:   i.KernelVersion,
		Architecture:    i.Architecture,
		CPUs:            int32(i.NCPU),
		MemoryBytes:     i.MemTotal,
	}, nil
}

// EnsureNetwork creates the named bridge network when the host lacks it.
func EnsureNetwork(ctx context.Context, cli *client.Client, name string) error {
	_, err := cli.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	if err == nil {
		return nil
	}
	if !IsNotFound(err) {
		return err
	}
	_, err = cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{
		Driver: "bridge",
		Labels: map[string]string{kamalv1.LabelManagedBy: kamalv1.ManagerName},
	})
	if err != nil && !IsConflict(err) {
		return fmt.Errorf("creating network %s: %w", name, err)
	}
	return nil
}

// Pull is how an object's image is pulled.
type Pull struct {
	// Auth is the X-Registry-Auth value of the object's credentials for the image's registry,
	// "" for none. It is sent with the pull only; nothing is written to the host's docker config.
	Auth string
	// Private says the image's repository was pulled with credentials (by this object or any
	// other): a copy on the host then proves nothing about this object's right to run it.
	Private bool
}

// Needed says whether the image is pulled before a container of it is created: when the host
// lacks it; and for a private image, or an object with credentials, even when the host has it,
// so that the registry decides, with the object's own credentials (none for an object
// without), whether it may run it. A layer the host has is not downloaded again: such a pull
// costs a manifest request. A public image on the host is used as it is.
func (p Pull) Needed(present bool) bool { return !present || p.Private || p.Auth != "" }

// EnsureImage is EnsureImageFor with Pull{Auth: registryAuth}: with no credentials, it pulls
// ref only when the host lacks it (the proxy's image, a setup container's).
func EnsureImage(ctx context.Context, cli *client.Client, ref, registryAuth string) (bool, error) {
	return EnsureImageFor(ctx, cli, ref, Pull{Auth: registryAuth})
}

// EnsureImageFor pulls ref for an object when p says so (see Pull.Needed), and says whether it
// pulled.
func EnsureImageFor(ctx context.Context, cli *client.Client, ref string, p Pull) (bool, error) {
	_, err := cli.ImageInspect(ctx, ref)
	if err != nil && !IsNotFound(err) {
		return false, err
	}
	if !p.Needed(err == nil) {
		return false, nil
	}
	resp, err := cli.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: p.Auth})
	if err != nil {
		return false, fmt.Errorf("pulling %s: %w", ref, err)
	}
	defer resp.Close()
	if err := resp.Wait(ctx); err != nil {
		return false, fmt.Errorf("pulling %s: %w", ref, err)
	}
	return true, nil
}
