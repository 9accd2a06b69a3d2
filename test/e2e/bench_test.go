package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"golang.org/x/crypto/ssh"

	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/remote"
)

func benchTarget(b *testing.B) *remote.Target {
	h := env.Host(hostMain)
	signer, err := ssh.ParsePrivateKey(env.ClientPrivateKeyPEM())
	if err != nil {
		b.Fatal(err)
	}
	keys, err := remote.ParseKnownHosts([]string{h.HostPublicKey()})
	if err != nil {
		b.Fatal(err)
	}
	return &remote.Target{Address: h.Address(), Port: 22, User: "root", Signer: signer, HostKeys: keys}
}

// BenchmarkConnect is one connection setup: TCP, SSH handshake with host key verification,
// public key authentication, and the first Engine API call (a ping) through it.
func BenchmarkConnect(b *testing.B) {
	t := benchTarget(b)
	ctx := context.Background()
	for b.Loop() {
		conn, err := remote.Dial(ctx, t)
		if err != nil {
			b.Fatal(err)
		}
		cli, err := docker.NewClient(docker.NewDialer(conn, ""))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
			b.Fatal(err)
		}
		_ = cli.Close()
		_ = conn.Close()
	}
}

// BenchmarkEngineCallOverSharedConnection is one Engine API call (container list) over an
// open connection, as the controllers make them.
func BenchmarkEngineCallOverSharedConnection(b *testing.B) {
	t := benchTarget(b)
	ctx := context.Background()
	conn, err := remote.Dial(ctx, t)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	cli, err := docker.NewClient(docker.NewDialer(conn, ""))
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	for b.Loop() {
		if _, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSteadyStateMinute keeps a Ready Server under the controller for a minute and
// reports how many SSH connections it opened and holds.
func BenchmarkSteadyStateMinute(b *testing.B) {
	h := env.Host(hostMain)
	t := b
	ns := newNamespace(t)
	keySecret(t, ns)
	srv := serverFor(ns, "web-1", h)
	if err := k8s.Create(context.Background(), srv); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = k8s.Delete(context.Background(), srv) }()
	for b.Loop() {
		waitReady(t, srv)
		before := mgr.Fleet.Pool.Dials()
		time.Sleep(time.Minute) // the measured window: the controller alone, nothing else
		b.ReportMetric(float64(mgr.Fleet.Pool.Dials()-before), "dials/min")
		b.ReportMetric(float64(sshConnections(t, h)), "open-ssh-connections")
	}
}
