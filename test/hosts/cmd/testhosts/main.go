// Command testhosts brings kamal-operator's test hosts up and down by hand (as root):
//
//	go run ./test/hosts/cmd/testhosts up [-n 3] [-behind 1:1] [-no-streamlocal 2] [-no-images]
//	go run ./test/hosts/cmd/testhosts status
//	go run ./test/hosts/cmd/testhosts down
//
// `up` leaves the hosts running after it exits and prints how to reach them; `down` (or the next
// test run's hosts.Start) removes them.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kamal-operator/kamal-operator/test/hosts"
)

func usage() {
	fmt.Fprintf(os.Stderr, `usage: testhosts up|down|status [flags]

up      start hosts (after removing any left running) and leave them running
down    stop and remove everything
status  show what runs

flags of up:
`)
	upFlags(new(upOpts)).PrintDefaults()
	os.Exit(2)
}

type upOpts struct {
	n             int
	behind        string
	noStreamLocal string
	noImages      bool
	stateDir      string
	timeout       time.Duration
}

func upFlags(o *upOpts) *flag.FlagSet {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	fs.IntVar(&o.n, "n", 3, "hosts on the root bridge")
	fs.StringVar(&o.behind, "behind", "", "extra hosts reachable only through a jump host: COUNT:JUMP, e.g. 1:1 adds one host behind host 1")
	fs.StringVar(&o.noStreamLocal, "no-streamlocal", "", "comma-separated host numbers whose sshd refuses stream-local forwarding")
	fs.BoolVar(&o.noImages, "no-images", false, "do not build and push the fixture images")
	fs.StringVar(&o.stateDir, "state", hosts.DefaultStateDir, "state folder")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Minute, "give up after")
	return fs
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "testhosts: "+f+"\n", a...) }
	switch os.Args[1] {
	case "up":
		var o upOpts
		_ = upFlags(&o).Parse(os.Args[2:])
		if err := up(o, logf); err != nil {
			fmt.Fprintln(os.Stderr, "testhosts up:", err)
			os.Exit(1)
		}
	case "down":
		fs := flag.NewFlagSet("down", flag.ExitOnError)
		state := fs.String("state", hosts.DefaultStateDir, "state folder")
		_ = fs.Parse(os.Args[2:])
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		start := time.Now()
		if err := hosts.Teardown(ctx, *state, logf); err != nil {
			fmt.Fprintln(os.Stderr, "testhosts down:", err)
			os.Exit(1)
		}
		fmt.Printf("down in %s\n", time.Since(start).Round(time.Millisecond))
	case "status":
		fs := flag.NewFlagSet("status", flag.ExitOnError)
		state := fs.String("state", hosts.DefaultStateDir, "state folder")
		_ = fs.Parse(os.Args[2:])
		if err := status(*state); err != nil {
			fmt.Fprintln(os.Stderr, "testhosts status:", err)
			os.Exit(1)
		}
	default:
		usage()
	}
}

func up(o upOpts, logf func(string, ...any)) error {
	layout := make([]hosts.HostOptions, o.n)
	if o.behind != "" {
		c, j, ok := strings.Cut(o.behind, ":")
		count, err1 := strconv.Atoi(c)
		jump, err2 := strconv.Atoi(j)
		if !ok || err1 != nil || err2 != nil || count < 0 {
			return fmt.Errorf("-behind wants COUNT:JUMP, got %q", o.behind)
		}
		for i := 0; i < count; i++ {
			layout = append(layout, hosts.HostOptions{Behind: jump})
		}
	}
	if o.noStreamLocal != "" {
		for _, s := range strings.Split(o.noStreamLocal, ",") {
			i, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || i < 1 || i > len(layout) {
				return fmt.Errorf("-no-streamlocal: bad host number %q", s)
			}
			layout[i-1].NoStreamLocalForwarding = true
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	env, err := hosts.Start(ctx, hosts.Options{Hosts: layout, StateDir: o.stateDir, NoImages: o.noImages, Logf: logf})
	if err != nil {
		return err
	}
	t := env.Timings()
	var keys []string
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("%-18s %s\n", k, t[k].Round(time.Millisecond))
	}
	for _, r := range env.Images() {
		state := "already there"
		if r.Pushed {
			state = "pushed"
		}
		fmt.Printf("image %s %s (%s)\n", r.Ref, r.Digest[:19], state)
	}
	fmt.Printf("registry %s\n", env.RegistryAddress())
	for _, h := range env.Hosts {
		v, _ := h.DockerAPIVersion(ctx)
		extra := ""
		if h.JumpHost() != nil {
			extra = " behind " + h.JumpHost().Name()
		}
		if !h.StreamLocalForwarding() {
			extra += " (no stream-local forwarding)"
		}
		fmt.Printf("\n%s %s%s  docker API %s\n  DOCKER_HOST=%s\n  %s\n  nsenter --target %d --mount --uts --net\n",
			h.Name(), h.Address(), extra, v, h.DockerHost(), shellJoin(h.SSHArgs()), h.HolderPID())
	}
	fmt.Printf("\nleft running; stop with: go run ./test/hosts/cmd/testhosts down\n")
	return nil
}

func status(stateDir string) error {
	st, err := hosts.Status(stateDir)
	if err != nil {
		return err
	}
	if len(st.Hosts) == 0 {
		fmt.Printf("no run recorded in %s\n", stateDir)
	}
	if st.RegistryPID != 0 {
		fmt.Printf("registry %s pid %d\n", hosts.RegistryAddress, st.RegistryPID)
	} else if len(st.Hosts) > 0 {
		fmt.Printf("registry not running\n")
	}
	for _, h := range st.Hosts {
		extra := ""
		if h.Behind != "" {
			extra = " behind " + h.Behind
		}
		fmt.Printf("%s %s%s %s  DOCKER_HOST=unix://%s\n", h.Name, h.Address, extra, h.Processes(), h.DockerSocket)
	}
	if len(st.LeftoverNetns) > 0 || len(st.LeftoverLinks) > 0 {
		fmt.Printf("on this machine: namespaces %v, links %v\n", st.LeftoverNetns, st.LeftoverLinks)
	}
	if len(st.Hosts) > 0 {
		fmt.Printf("client key %s, known hosts %s\n", st.ClientKeyFile, st.KnownHostsFile)
	}
	return nil
}

// shellJoin quotes args for a POSIX shell.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:@%,+", r))
		}) < 0 {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}
