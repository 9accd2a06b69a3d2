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

// EnsureImage pulls ref unless the host has it, and says whether it pulled. registryAuth is
// the base64 JSON credential sent with this pull only; nothing is written to the host's docker
// config.
func EnsureImage(ctx context.Context, cli *client.Client, ref, registryAuth string) (bool, error) {
	if _, err := cli.ImageInspect(ctx, ref); err == nil {
		return false, nil
	} else if !IsNotFound(err) {
		return false, err
	}
	resp, err := cli.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: registryAuth})
	if err != nil {
		return false, fmt.Errorf("pulling %s: %w", ref, err)
	}
	defer resp.Close()
	if err := resp.Wait(ctx); err != nil {
		return false, fmt.Errorf("pulling %s: %w", ref, err)
	}
	return true, nil
}
