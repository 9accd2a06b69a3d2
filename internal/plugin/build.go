package plugin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/registry"
	dockerclient "github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/jsonmessage"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/buildctx"
	serverplacement "github.com/kamal-operator/kamal-operator/internal/placement"
	"github.com/kamal-operator/kamal-operator/internal/registryauth"
)

func init() { commands = append(commands, newBuildCommand) }

func newBuildCommand(o *Options) *cobra.Command {
	var f buildFlags
	cmd := &cobra.Command{
		Use:   "build [CONTEXT]",
		Short: "Build an image on a builder Server from a local context and push it",
		Long: `build sends CONTEXT (default ".") as a tar, honouring .dockerignore, to the Docker engine of
a builder Server over its SSH connection, builds it there with the engine's builder, and pushes
the image to its registry with credentials sent in the push request only. Kamal's build push.

The tag is the Git commit of CONTEXT (with "-dirty-<random>" after it when the work tree has
uncommitted changes), or --tag. The repository is --image. The builder is --builder, else the
Server labelled kamal.operator.dev/builder=true. Credentials come from the dockerconfigjson
Secret --registry-secret; without one the push goes without credentials.

To build a Deployment's image and roll it out, use kubectl kamal deploy NAME --build.`,
		Example: `  kubectl kamal build --builder web-1 --image registry.example.com/dokuya .
  kubectl kamal build --builder web-1 --image registry.example.com/dokuya --registry-secret registry -f Dockerfile.prod --build-arg RAILS_ENV=production`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, err := o.Namespace()
			if err != nil {
				return err
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			if f.image == "" {
				return errors.New("--image REPOSITORY is required (or build a Deployment's image with kubectl kamal deploy NAME --build)")
			}
			ref, err := runBuild(cmd.Context(), o, c, ns, &f, nil, contextArg(args))
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(o.Streams.Out, ref)
			return err
		},
	}
	f.add(cmd.Flags(), "repository of the image, without a tag (e.g. registry.example.com/app); required")
	return cmd
}

func contextArg(args []string) string {
	if len(args) == 0 {
		return "."
	}
	return args[0]
}

// buildFlags are the flags build and deploy --build share.
type buildFlags struct {
	builder, dockerfile, target, tag, registrySecret, image string
	buildArgs                                               []string
}

func (f *buildFlags) add(fs *pflag.FlagSet, imageUsage string) {
	fs.StringVar(&f.builder, "builder", "", "Server that builds (default: the Server labelled "+buildctx.BuilderLabel+"=true, else the first Server of the Deployment's primary role)")
	fs.StringVarP(&f.dockerfile, "file", "f", "", "Dockerfile, relative to the current folder and inside CONTEXT (default CONTEXT/Dockerfile)")
	fs.StringVar(&f.target, "target", "", "build stage to build")
	fs.StringArrayVar(&f.buildArgs, "build-arg", nil, "build argument KEY=VALUE (KEY alone: its value in this environment); repeatable")
	fs.StringVar(&f.tag, "tag", "", "image tag (default: the Git commit of CONTEXT)")
	fs.StringVar(&f.registrySecret, "registry-secret", "", "kubernetes.io/dockerconfigjson Secret with the credentials to push (default: the Deployment's imagePullSecrets)")
	fs.StringVar(&f.image, "image", "", imageUsage)
}

// runBuild builds the context dir on the builder Server for deployment d (nil for a plain
// build), pushes it and returns the pushed reference repo:tag. Progress goes to stderr.
func runBuild(ctx context.Context, o *Options, c client.Client, ns string, f *buildFlags, d *kamalv1.Deployment, dir string) (string, error) {
	errOut := o.Streams.ErrOut
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("build context %s is not a folder", dir)
	}
	dockerfile, err := dockerfileIn(dir, f.dockerfile)
	if err != nil {
		return "", err
	}
	buildArgs, err := buildctx.BuildArgs(f.buildArgs, os.LookupEnv)
	if err != nil {
		return "", err
	}

	repo := f.image
	if repo == "" && d != nil {
		repo = buildctx.Repository(d.Spec.Image)
	}
	tag := f.tag
	if tag == "" {
		if tag, err = gitTag(ctx, dir); err != nil {
			return "", err
		}
	}
	ref, err := buildctx.ImageRef(repo, tag)
	if err != nil {
		return "", err
	}
	auth, err := pushAuth(ctx, c, ns, f.registrySecret, d, ref, errOut)
	if err != nil {
		return "", err
	}

	b, err := chooseBuilder(ctx, c, ns, f.builder, d)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(errOut, "Building %s on Server %s (%s)\n", ref, b.Name, b.Reason)
	hs := newHosts(c)
	defer hs.Close()
	h, err := hs.connect(ctx, ns, b.Name)
	if err != nil {
		return "", err
	}
	info, err := h.Docker.Info(ctx, dockerclient.InfoOptions{})
	if err != nil {
		return "", fmt.Errorf("Server %s: reading the engine's info: %w", b.Name, err)
	}
	if d != nil {
		archs, err := deploymentArchs(ctx, c, d)
		if err != nil {
			return "", err
		}
		unknown, err := buildctx.CheckArch(b.Name, info.Info.Architecture, archs)
		if err != nil {
			return "", err
		}
		if len(unknown) > 0 {
			fmt.Fprintf(errOut, "Note: the architecture of Server(s) %s is not known yet; the image is built for %s\n", strings.Join(unknown, ", "), buildctx.Arch(info.Info.Architecture))
		}
	}

	if err := buildImage(ctx, h.Docker, dir, dockerfile, ref, f.target, buildArgs, auth, errOut); err != nil {
		return "", fmt.Errorf("build on Server %s failed: %w", b.Name, err)
	}
	digest, err := pushImage(ctx, h.Docker, ref, auth, errOut)
	if err != nil {
		return "", fmt.Errorf("push of %s from Server %s failed: %w", ref, b.Name, err)
	}
	if digest != "" {
		fmt.Fprintf(errOut, "Pushed %s@%s\n", ref, digest)
	} else {
		fmt.Fprintf(errOut, "Pushed %s\n", ref)
	}
	return ref, nil
}

// dockerfileIn is the Dockerfile's path inside the context dir, slash-separated: flag is
// relative to the current folder, as docker build reads -f.
func dockerfileIn(dir, flag string) (string, error) {
	if flag == "" {
		return "Dockerfile", nil
	}
	abs, err := filepath.Abs(flag)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(dir, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("Dockerfile %s is outside the build context %s: move it inside", flag, dir)
	}
	return filepath.ToSlash(rel), nil
}

// gitTag is the tag of a build of dir: its commit, marked dirty with a random suffix when the
// work tree has uncommitted changes. git runs with an argument list, never through a shell.
func gitTag(ctx context.Context, dir string) (string, error) {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return string(out), nil
	}
	sha, err := git("rev-parse", "HEAD")
	if err != nil {
		return "", fmt.Errorf("%s: the image tag is the Git commit of the build context, and it has none (pass --tag): %w", dir, err)
	}
	status, err := git("status", "--porcelain")
	if err != nil {
		return "", err
	}
	rnd := make([]byte, 4)
	_, _ = rand.Read(rnd)
	return buildctx.Tag(sha, buildctx.Dirty(status), hex.EncodeToString(rnd))
}

// pushAuth is the X-Registry-Auth value for ref from the Secret named by flag, else the
// Deployment's imagePullSecrets; "" without credentials for ref's registry.
func pushAuth(ctx context.Context, c client.Reader, ns, flag string, d *kamalv1.Deployment, ref string, errOut io.Writer) (string, error) {
	var names []string
	switch {
	case flag != "":
		names = []string{flag}
	case d != nil:
		for _, s := range d.Spec.ImagePullSecrets {
			names = append(names, s.Name)
		}
	}
	if len(names) == 0 {
		fmt.Fprintf(errOut, "Note: no --registry-secret and no imagePullSecrets: pushing to %s without credentials\n", registryauth.Registry(ref))
		return "", nil
	}
	var configs [][]byte
	for _, n := range names {
		s := &corev1.Secret{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: n}, s); err != nil {
			return "", fmt.Errorf("registry Secret %s/%s: %w", ns, n, err)
		}
		if s.Type != corev1.SecretTypeDockerConfigJson {
			return "", fmt.Errorf("registry Secret %s/%s is of type %q, want %s", ns, n, s.Type, corev1.SecretTypeDockerConfigJson)
		}
		configs = append(configs, s.Data[corev1.DockerConfigJsonKey])
	}
	auth, err := registryauth.For(ref, configs)
	if err != nil {
		return "", fmt.Errorf("registry Secret(s) %s: %w", strings.Join(names, ", "), err)
	}
	if auth == "" {
		fmt.Fprintf(errOut, "Note: Secret(s) %s hold no credentials for %s: pushing without credentials\n", strings.Join(names, ", "), registryauth.Registry(ref))
	}
	return auth, nil
}

// chooseBuilder picks the builder Server, by buildctx.ChooseBuilder's rules.
func chooseBuilder(ctx context.Context, c client.Reader, ns, flag string, d *kamalv1.Deployment) (buildctx.Builder, error) {
	var labelled []string
	primary, role := "", ""
	if flag == "" {
		var list kamalv1.ServerList
		if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{buildctx.BuilderLabel: "true"}); err != nil {
			return buildctx.Builder{}, err
		}
		for _, s := range list.Items {
			labelled = append(labelled, s.Name)
		}
		if len(labelled) == 0 && d != nil {
			role = (&workload{Deployment: d}).primaryRole()
			if r, ok := d.Spec.Roles[role]; ok {
				selected, err := selectServers(ctx, c, d.Namespace, r.Servers)
				if err != nil {
					return buildctx.Builder{}, err
				}
				if len(selected) > 0 {
					primary = selected[0].Ref
				}
			}
		}
	}
	return buildctx.ChooseBuilder(flag, labelled, primary, role)
}

// selectedServer is one Server a selector picks: its ref as status names it ("name", or
// "namespace/name" for another namespace's) and the object as listed.
type selectedServer struct {
	Ref    string
	Server *kamalv1.Server
}

// selectServers are the Servers sel picks for an object of objNamespace, in placement order.
func selectServers(ctx context.Context, c client.Reader, objNamespace string, sel kamalv1.ServerSelector) ([]selectedServer, error) {
	ns := objNamespace
	if sel.Namespace != "" {
		ns = sel.Namespace
	}
	var list kamalv1.ServerList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	picked, _, err := serverplacement.Select(sel, list.Items)
	if err != nil {
		return nil, err
	}
	byName := map[string]*kamalv1.Server{}
	for i := range list.Items {
		byName[list.Items[i].Name] = &list.Items[i]
	}
	out := make([]selectedServer, len(picked))
	for i, name := range picked {
		ref := name
		if ns != objNamespace {
			ref = ns + "/" + name
		}
		out[i] = selectedServer{Ref: ref, Server: byName[name]}
	}
	return out, nil
}

// deploymentArchs are the architectures of the Deployment's Servers by ref, as the controller
// read them ("" for one not read yet).
func deploymentArchs(ctx context.Context, c client.Reader, d *kamalv1.Deployment) (map[string]string, error) {
	archs := map[string]string{}
	for _, r := range d.Spec.Roles {
		selected, err := selectServers(ctx, c, d.Namespace, r.Servers)
		if err != nil {
			return nil, err
		}
		for _, s := range selected {
			archs[s.Ref] = ""
			if f := s.Server.Status.Facts; f != nil {
				archs[s.Ref] = f.Architecture
			}
		}
	}
	return archs, nil
}

// buildImage streams the context to the engine's POST /build and its output to out. The
// push credentials also go with the build (X-Registry-Config), for a FROM on the same
// registry; the engine keeps them for that request only.
func buildImage(ctx context.Context, cli *dockerclient.Client, dir, dockerfile, ref, target string, args map[string]*string, auth string, out io.Writer) error {
	fsys := os.DirFS(dir)
	excludes, err := buildctx.Excludes(fsys)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(dockerfile))); err != nil {
		return fmt.Errorf("no Dockerfile: %w", err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(buildctx.Tar(pw, fsys, excludes, dockerfile, buildctx.IgnoreFile)) }()
	defer pr.Close()
	opts := dockerclient.ImageBuildOptions{
		Tags: []string{ref}, Dockerfile: dockerfile, Target: target, BuildArgs: args,
		Remove: true, ForceRemove: true,
	}
	if ac, ok := decodeAuth(auth); ok {
		opts.AuthConfigs = map[string]registry.AuthConfig{ac.ServerAddress: ac}
	}
	res, err := cli.ImageBuild(ctx, pr, opts)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	return jsonmessage.DisplayStream(res.Body, out, jsonmessage.WithAuxCallback(func(jsonstream.Message) {}))
}

func decodeAuth(auth string) (registry.AuthConfig, bool) {
	var ac registry.AuthConfig
	if auth == "" {
		return ac, false
	}
	b, err := base64.URLEncoding.DecodeString(auth)
	if err != nil || json.Unmarshal(b, &ac) != nil || ac.ServerAddress == "" {
		return ac, false
	}
	return ac, true
}

// pushImage pushes ref with auth (sent in the request's X-Registry-Auth header, never stored
// on the host), its progress to out, and returns the digest the registry gave it.
func pushImage(ctx context.Context, cli *dockerclient.Client, ref, auth string, out io.Writer) (string, error) {
	if auth == "" {
		auth = base64.URLEncoding.EncodeToString([]byte("{}")) // no credentials, as docker push sends it
	}
	res, err := cli.ImagePush(ctx, ref, dockerclient.ImagePushOptions{RegistryAuth: auth})
	if err != nil {
		return "", err
	}
	defer res.Close()
	var digest string
	err = jsonmessage.DisplayMessages(res.JSONMessages(ctx), out, jsonmessage.WithAuxCallback(func(m jsonstream.Message) {
		var aux struct{ Digest string }
		if m.Aux != nil && json.Unmarshal(*m.Aux, &aux) == nil && aux.Digest != "" {
			digest = aux.Digest
		}
	}))
	return digest, err
}
