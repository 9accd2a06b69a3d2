// Command fleetsim runs a simulated fleet of hosts (test/fleetsim) in a process of its own, so
// the controller's CPU and memory can be measured alone. It writes the hosts' addresses and
// host keys to -state-file and serves the control endpoint on -control.
//
//	fleetsim -hosts 1000 -authorized-key id_ed25519.pub -state-file fleet.json
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kamal-operator/kamal-operator/test/fleetsim"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fleetsim:", err)
		os.Exit(1)
	}
}

func run() error {
	hosts := flag.Int("hosts", 100, "number of simulated hosts")
	base := flag.String("base", "127.1.0.1", "address of the first host; the others follow (127.0.0.0/8 is all loopback on Linux)")
	port := flag.Int("port", 22, "SSH port of every host (0: a free port per host, listed in the state file)")
	keyFile := flag.String("authorized-key", "", "public key (authorized_keys form) the hosts accept")
	pull := flag.Duration("pull-delay", 2*time.Second, "how long an image pull takes")
	start := flag.Duration("start-delay", 100*time.Millisecond, "how long a container start takes")
	health := flag.Duration("health-delay", time.Second, "how long after its start an app container answers health checks")
	apiVersion := flag.String("api-version", "1.41", "Engine API version the engines announce")
	stateFile := flag.String("state-file", "", "write the hosts (address, port, host key) and the control address here as JSON once they listen")
	control := flag.String("control", "127.0.0.1:0", "address of the control endpoint (empty: none)")
	flag.Parse()

	if *keyFile == "" {
		return fmt.Errorf("-authorized-key is required")
	}
	b, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return fmt.Errorf("%s: %w", *keyFile, err)
	}
	baseAddr, err := netip.ParseAddr(*base)
	if err != nil || !baseAddr.Is4() {
		return fmt.Errorf("-base %q: want an IPv4 address", *base)
	}
	t0 := time.Now()
	f, err := fleetsim.Start(fleetsim.Options{
		Hosts: *hosts, Base: baseAddr, Port: *port, AuthorizedKey: key, APIVersion: *apiVersion,
		Delays: fleetsim.Delays{Pull: *pull, Start: *start, Health: *health},
	})
	if err != nil {
		return err
	}
	defer f.Close()

	controlAddr := ""
	if *control != "" {
		ln, err := net.Listen("tcp", *control)
		if err != nil {
			return err
		}
		controlAddr = ln.Addr().String()
		srv := &http.Server{Handler: f.ControlHandler(controlAddr), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
	}
	if *stateFile != "" {
		if err := f.WriteState(*stateFile, controlAddr); err != nil {
			return err
		}
	}
	hs := f.Hosts()
	fmt.Printf("fleetsim: %d hosts %s .. %s up in %s; control %s\n", len(hs), hs[0].SSHAddress(), hs[len(hs)-1].SSHAddress(),
		time.Since(t0).Round(time.Millisecond), controlAddr)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	if u := f.Unknown(); len(u) > 0 {
		fmt.Fprintf(os.Stderr, "fleetsim: %d calls the simulator could not answer:\n", len(u))
		for _, s := range u {
			fmt.Fprintln(os.Stderr, "  "+s)
		}
		return fmt.Errorf("unknown calls")
	}
	return nil
}
