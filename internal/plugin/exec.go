package plugin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	dockerclient "github.com/moby/moby/client"
	"github.com/spf13/cobra"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/oneoff"
	"github.com/kamal-operator/kamal-operator/internal/release"
)

func init() { commands = append(commands, newExecCommand) }

// execOptions are the flags of exec (and shell).
type execOptions struct {
	*Options
	role, server      string
	stdin, tty, reuse bool
}

func newExecCommand(o *Options) *cobra.Command {
	eo := &execOptions{Options: o}
	cmd := &cobra.Command{
		Use:   "exec DEPLOYMENT|ACCESSORY [--role ROLE] [--server SERVER] [-i] [-t] [--reuse] -- COMMAND [ARG...]",
		Short: "Run a command in a one-off container of the deployed version, or in the running container (--reuse)",
		Long: `exec runs COMMAND where the workload runs, as Kamal's app exec does.

By default it starts a one-off container on the host of the workload's running container, from
the very image that container runs, with its environment (secret values included), volumes,
mounts, network, entrypoint, user and working directory, but no published ports, no restart
policy and no proxy route. The container is removed when the command ends, or when exec is
interrupted; its exit code is exec's.

With --reuse, COMMAND runs in the running container itself (docker exec).

The workload runs on several servers or roles: exec picks the primary role on the first server
and says so; --role and --server choose.`,
		Example: `  # Migrations' status, in a one-off container of the deployed version
  kubectl kamal exec dokuya -- bin/rails db:migrate:status

  # An interactive console
  kubectl kamal exec -it dokuya -- bin/rails console

  # In the running container of role jobs on Server web-2
  kubectl kamal exec --reuse --role jobs --server web-2 dokuya -- ps aux

  # In an accessory's container
  kubectl kamal exec --reuse accessory/db -- psql -U postgres -c 'select 1'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 || cmd.ArgsLenAtDash() != 1 {
				return errors.New("name the workload, then the command after --: kubectl kamal exec NAME -- COMMAND [ARG...]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return eo.run(cmd.Context(), args[0], [][]string{args[1:]})
		},
	}
	f := cmd.Flags()
	eo.addTargetFlags(cmd)
	f.BoolVarP(&eo.stdin, "stdin", "i", false, "pass stdin to the command")
	f.BoolVarP(&eo.tty, "tty", "t", false, "allocate a terminal for the command")
	f.BoolVar(&eo.reuse, "reuse", false, "run in the running container instead of a new one-off container")
	return cmd
}

// addTargetFlags adds --role and --server.
func (eo *execOptions) addTargetFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&eo.role, "role", "", "the Deployment's role to run in (default: the primary role)")
	cmd.Flags().StringVar(&eo.server, "server", "", "the Server to run on, as the workload names it (default: the first)")
}

// run runs the first of argvs; when one is not found in the image, the next (shell's sh after
// bash).
func (eo *execOptions) run(ctx context.Context, arg string, argvs [][]string) error {
	ns, err := eo.Namespace()
	if err != nil {
		return err
	}
	c, err := eo.Client()
	if err != nil {
		return err
	}
	w, err := getWorkload(ctx, c, ns, arg)
	if err != nil {
		return err
	}
	ps, err := w.placements(eo.role, eo.server)
	if err != nil {
		return err
	}
	p := ps[0]
	if len(ps) > 1 {
		fmt.Fprintln(eo.Streams.ErrOut, chosenPlacement(w, p))
	}
	hs := newHosts(c)
	defer hs.Close()
	h, err := hs.connect(ctx, w.Object().GetNamespace(), p.Server)
	if err != nil {
		return err
	}
	serving, err := servingContainer(ctx, h.Docker, w, p)
	if err != nil {
		return err
	}
	s := &session{
		cli:   h.Docker,
		term:  localTerminal(eo.Streams),
		stdin: eo.stdin,
		tty:   eo.tty,
	}
	for i, argv := range argvs {
		var res result
		if eo.reuse {
			res, err = s.execIn(ctx, serving.ID, argv, i < len(argvs)-1)
		} else {
			res, err = s.oneOff(ctx, w, serving.ID, argv)
		}
		if err != nil {
			if ctx.Err() != nil {
				// Interrupted (SIGINT, SIGTERM): what was started is cleaned up; exit as a
				// process ended by SIGINT does.
				return &ExitError{Code: 130}
			}
			return err
		}
		if res.notFound && i < len(argvs)-1 {
			fmt.Fprintf(eo.Streams.ErrOut, "%s is not in the image: running %s instead\n", argv[0], argvs[i+1][0])
			continue
		}
		if res.code != 0 {
			return &ExitError{Code: res.code}
		}
		return nil
	}
	return nil
}

// chosenPlacement says where a command runs when the workload runs in several places.
func chosenPlacement(w *workload, p placement) string {
	if w.Deployment == nil {
		return fmt.Sprintf("running on server %s (use --server to choose)", p.Server)
	}
	return fmt.Sprintf("running on server %s, role %s (use --server/--role to choose)", p.Server, p.Role)
}

// servingContainer is the running container of the workload at p.
func servingContainer(ctx context.Context, cli *dockerclient.Client, w *workload, p placement) (container.Summary, error) {
	list, err := cli.ContainerList(ctx, dockerclient.ContainerListOptions{Filters: w.filters(p.Role).Add("status", "running")})
	if err != nil {
		return container.Summary{}, fmt.Errorf("server %s: %w", p.Server, err)
	}
	c, ok := pickContainer(list.Items, preferredVersions(w, p))
	if !ok {
		what := w.String()
		if p.Role != "" {
			what += " role " + p.Role
		}
		return container.Summary{}, fmt.Errorf("no running container of %s on server %s", what, p.Server)
	}
	return c, nil
}

// preferredVersions are the versions whose container a command runs in, best first: the one
// the status says serves at p, the one serving everywhere, the one being deployed.
func preferredVersions(w *workload, p placement) []string {
	d := w.Deployment
	if d == nil {
		return nil
	}
	var vs []string
	for _, t := range d.Status.Targets {
		if t.Server == p.Server && t.Role == p.Role && t.Version != "" {
			vs = append(vs, t.Version)
		}
	}
	if d.Status.Version != "" {
		vs = append(vs, d.Status.Version)
	}
	return append(vs, release.Version(d.Spec.Image))
}

// pickContainer picks among running containers of one placement (several mid-rollout): the
// first of versions that one of them has, else the newest.
func pickContainer(cs []container.Summary, versions []string) (container.Summary, bool) {
	if len(cs) == 0 {
		return container.Summary{}, false
	}
	cs = append([]container.Summary(nil), cs...)
	sort.SliceStable(cs, func(i, j int) bool {
		if cs[i].Created != cs[j].Created {
			return cs[i].Created > cs[j].Created
		}
		return cs[i].ID < cs[j].ID
	})
	for _, v := range versions {
		for _, c := range cs {
			if c.Labels[kamalv1.LabelVersion] == v {
				return c, true
			}
		}
	}
	return cs[0], true
}

// oneOffName is "<workload>-exec-<12 hex digits>", the workload's name cut so that the whole
// stays a DNS label (63 characters).
func oneOffName(workload string, random []byte) string {
	suffix := "-exec-" + hex.EncodeToString(random)
	keep := max(63-len(suffix), 1)
	if len(workload) > keep {
		workload = strings.TrimRight(workload[:keep], "-.")
	}
	return workload + suffix
}

// oneOffCreate is the create request of a one-off container shaped like the running container
// in: the image it runs (by ID, so exactly what is deployed), its env, binds and mounts, its
// network (without its aliases: the proxy and the other apps never reach a one-off by the
// workload's name), entrypoint, user, working directory and host settings, but labels of its
// own, no ports, no restart policy and no health check; argv is the command.
func oneOffCreate(in container.InspectResponse, name, networkName string, labels map[string]string, argv []string, stdin, tty bool) dockerclient.ContainerCreateOptions {
	cfg := &container.Config{
		Image:        in.Image,
		Cmd:          argv,
		Labels:       labels,
		Tty:          tty,
		OpenStdin:    stdin,
		StdinOnce:    stdin,
		AttachStdin:  stdin,
		AttachStdout: true,
		AttachStderr: true,
	}
	hc := &container.HostConfig{}
	if r := in.Config; r != nil {
		cfg.Env = append([]string(nil), r.Env...)
		cfg.Entrypoint = r.Entrypoint
		cfg.User = r.User
		cfg.WorkingDir = r.WorkingDir
		cfg.StopSignal = r.StopSignal
	}
	if r := in.HostConfig; r != nil {
		hc.Binds = r.Binds
		hc.Mounts = r.Mounts
		hc.Tmpfs = r.Tmpfs
		hc.VolumeDriver = r.VolumeDriver
		hc.NetworkMode = r.NetworkMode
		hc.Resources = r.Resources
		hc.ExtraHosts = r.ExtraHosts
		hc.DNS, hc.DNSOptions, hc.DNSSearch = r.DNS, r.DNSOptions, r.DNSSearch
		hc.CapAdd, hc.CapDrop = r.CapAdd, r.CapDrop
		hc.Privileged = r.Privileged
		hc.ReadonlyRootfs = r.ReadonlyRootfs
		hc.SecurityOpt = r.SecurityOpt
		hc.Init = r.Init
		hc.ShmSize = r.ShmSize
		hc.Sysctls = r.Sysctls
		hc.LogConfig = r.LogConfig
	}
	var nc *network.NetworkingConfig
	if in.NetworkSettings != nil && in.NetworkSettings.Networks[networkName] != nil {
		hc.NetworkMode = container.NetworkMode(networkName)
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{networkName: {}}}
	}
	return dockerclient.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: hc, NetworkingConfig: nc}
}

// result is how a command ended: its exit code, or that it is not in the image.
type result struct {
	code     int
	notFound bool
}

// notFoundMessage says the engine could not start a command that is not in the image (or not
// executable), as Docker's exec start and container start errors say it.
func notFoundMessage(s string) bool {
	return strings.Contains(s, "executable file not found") || strings.Contains(s, "no such file or directory")
}

// startErrorCode is the exit code for a command the engine could not start, as docker run
// gives it: 127 when it does not exist, 126 otherwise.
func startErrorCode(err error) int {
	if notFoundMessage(err.Error()) {
		return 127
	}
	return 126
}

// session runs commands on one host with the local terminal.
type session struct {
	cli        *dockerclient.Client
	term       *terminal
	stdin, tty bool
}

// oneOff runs argv in a new one-off container shaped like servingID and removes it.
func (s *session) oneOff(ctx context.Context, w *workload, servingID string, argv []string) (result, error) {
	in, err := s.cli.ContainerInspect(ctx, servingID, dockerclient.ContainerInspectOptions{})
	if err != nil {
		return result{}, err
	}
	random := make([]byte, 6)
	if _, err := rand.Read(random); err != nil {
		return result{}, err
	}
	o := w.Object()
	opts := oneOffCreate(in.Container, oneOffName(o.GetName(), random), docker.NamespaceNetwork(o.GetNamespace()),
		oneoff.Labels(o.GetNamespace(), oneoff.KindExec, w.Kind(), o.GetName()), argv, s.stdin, s.tty)
	created, err := s.cli.ContainerCreate(ctx, opts)
	if err != nil {
		return result{}, fmt.Errorf("creating the one-off container: %w", err)
	}
	id := created.ID
	// Removed however this ends, Ctrl-C and SIGTERM included: ctx may be cancelled already.
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, err := s.cli.ContainerRemove(rctx, id, dockerclient.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !docker.IsNotFound(err) {
			fmt.Fprintf(s.term.errOut, "warning: removing the one-off container %s: %v (the controller removes it later)\n", opts.Name, err)
		}
	}()
	att, err := s.cli.ContainerAttach(ctx, id, dockerclient.ContainerAttachOptions{Stream: true, Stdin: s.stdin, Stdout: true, Stderr: true})
	if err != nil {
		return result{}, err
	}
	defer att.Close()
	// Registered before the start, so a command that ends at once is not missed.
	wctx, stopWait := context.WithCancel(ctx)
	defer stopWait()
	wait := s.cli.ContainerWait(wctx, id, dockerclient.ContainerWaitOptions{Condition: container.WaitConditionNextExit})

	restore := s.term.raw(s.tty)
	defer restore()
	out := s.copyOutput(att.HijackedResponse, nil)
	if _, err := s.cli.ContainerStart(ctx, id, dockerclient.ContainerStartOptions{}); err != nil {
		if ctx.Err() != nil {
			return result{}, ctx.Err()
		}
		restore()
		fmt.Fprintf(s.term.errOut, "error: %v\n", err)
		return result{code: startErrorCode(err), notFound: notFoundMessage(err.Error())}, nil
	}
	if s.tty {
		stop := s.term.followSize(ctx, func(ctx context.Context, h, w uint) error {
			_, err := s.cli.ContainerResize(ctx, id, dockerclient.ContainerResizeOptions{Height: h, Width: w})
			return err
		})
		defer stop()
	}
	if s.stdin {
		go s.copyInput(att.HijackedResponse, nil, out)
	}
	var code int
	select {
	case r := <-wait.Result:
		if r.Error != nil && r.Error.Message != "" {
			return result{}, errors.New(r.Error.Message)
		}
		code = int(r.StatusCode)
	case err := <-wait.Error:
		return result{}, err
	case <-ctx.Done():
		return result{}, ctx.Err()
	}
	// The engine ends the attach stream once the container has exited; the output up to the
	// end is the command's.
	select {
	case <-out:
	case <-ctx.Done():
		return result{}, ctx.Err()
	}
	return result{code: code}, nil
}

// execIn runs argv in the running container id. When fallback is set, a command that is not
// in the image is reported as notFound and the engine's error is not shown: the output (and
// the input) waits until the engine has started the command.
func (s *session) execIn(ctx context.Context, id string, argv []string, fallback bool) (result, error) {
	created, err := s.cli.ExecCreate(ctx, id, dockerclient.ExecCreateOptions{
		TTY: s.tty, AttachStdin: s.stdin, AttachStdout: true, AttachStderr: true, Cmd: argv,
	})
	if err != nil {
		return result{}, err
	}
	restore := s.term.raw(s.tty)
	defer restore()
	att, err := s.cli.ExecAttach(ctx, created.ID, dockerclient.ExecAttachOptions{TTY: s.tty})
	if err != nil {
		return result{}, err
	}
	defer att.Close()
	var hold *heldOutput
	if fallback {
		hold = &heldOutput{}
	}
	out := s.copyOutput(att.HijackedResponse, hold)
	started := make(chan struct{})
	if hold == nil {
		close(started)
	} else {
		go func() {
			// The engine gives the command's process ID once it runs; until then what comes
			// out may be the engine's own error.
			if s.execStarted(ctx, created.ID, out) {
				_ = hold.release()
				close(started)
			}
		}()
	}
	if s.stdin {
		go s.copyInput(att.HijackedResponse, started, out)
	}
	if s.tty {
		go func() {
			select {
			case <-started:
			case <-out:
				return
			}
			stop := s.term.followSize(ctx, func(ctx context.Context, h, w uint) error {
				_, err := s.cli.ExecResize(ctx, created.ID, dockerclient.ExecResizeOptions{Height: h, Width: w})
				return err
			})
			<-out
			stop()
		}()
	}
	select {
	case <-out:
	case <-ctx.Done():
		return result{}, ctx.Err()
	}
	code, err := s.execExitCode(ctx, created.ID)
	if err != nil {
		return result{}, err
	}
	if hold != nil && !hold.isReleased() {
		if (code == 126 || code == 127) && notFoundMessage(hold.text()) {
			return result{code: code, notFound: true}, nil
		}
		if err := hold.release(); err != nil {
			return result{}, err
		}
	}
	return result{code: code}, nil
}

// execStarted waits until the exec runs (true), or until its stream has ended first (false).
func (s *session) execStarted(ctx context.Context, execID string, ended <-chan struct{}) bool {
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		in, err := s.cli.ExecInspect(ctx, execID, dockerclient.ExecInspectOptions{})
		if err == nil && in.PID != 0 {
			return true
		}
		select {
		case <-ended:
			return false
		case <-ctx.Done():
			return false
		case <-time.After(delay):
		}
	}
}

// execExitCode is the exit code of an exec whose stream has ended; the engine records it as
// the process exits, so it may lag the stream's end by a moment.
func (s *session) execExitCode(ctx context.Context, execID string) (int, error) {
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		in, err := s.cli.ExecInspect(ictx, execID, dockerclient.ExecInspectOptions{})
		if err != nil {
			return 0, err
		}
		if !in.Running {
			return in.ExitCode, nil
		}
		select {
		case <-ictx.Done():
			return 0, fmt.Errorf("the command's exit code: %w", ictx.Err())
		case <-time.After(delay):
		}
	}
}

// copyOutput copies the attach stream to the terminal until it ends (the returned channel is
// closed then): as it is with a TTY, demultiplexed to stdout and stderr without. With hold,
// the output waits there until released.
func (s *session) copyOutput(att dockerclient.HijackedResponse, hold *heldOutput) <-chan struct{} {
	done := make(chan struct{})
	stdout, stderr := s.term.out, s.term.errOut
	if hold != nil {
		stdout, stderr = hold.writer(stdout), hold.writer(stderr)
	}
	go func() {
		defer close(done)
		if s.tty {
			_, _ = io.Copy(stdout, att.Reader)
		} else {
			_, _ = stdcopy.StdCopy(stdout, stderr, att.Reader)
		}
	}()
	return done
}

// copyInput copies stdin to the attach stream once started is closed (nil: at once; never
// when the output ends first). At the end of stdin the command's stdin ends too, so a command
// reading it to its end (cat) ends: the stream's write side is closed, or, with a terminal,
// Ctrl-D is typed (EOF, as a terminal says it): the engine closes the whole terminal when
// its input closes, and what the command writes after would be lost.
func (s *session) copyInput(att dockerclient.HijackedResponse, started, ended <-chan struct{}) {
	if started != nil {
		select {
		case <-started:
		case <-ended:
			return
		}
	}
	_, _ = io.Copy(att.Conn, s.term.in)
	if s.tty {
		_, _ = att.Conn.Write([]byte{0x04})
		return
	}
	_ = att.CloseWrite()
}
