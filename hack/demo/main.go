// Command demo runs kamal-operator's samples end to end on this machine (as root) and leaves
// them running:
//
//	make demo                      # = go build -o bin/demo/kamal-demo ./hack/demo && bin/demo/kamal-demo up
//	bin/demo/kamal-demo status
//	make demo-down                 # = bin/demo/kamal-demo down
//
// `up` starts two test hosts (network namespaces with their own sshd and dockerd, see
// test/hosts) with the registry and the fixture images, a control plane (the kube-apiserver and
// etcd built by `make kube-binaries`, on 127.0.0.1) and the controller (bin/manager, as its own
// process), applies config/samples through a generated kustomize overlay (bin/demo/overlay) that
// points them at the test hosts, waits until every resource is Ready and asks the app for an
// answer through each host's proxy. The control plane and the controller run under a detached
// supervisor process (bin/demo/supervisor.log); `down` stops it and removes the hosts.
//
// Running `up` again reuses a healthy demo (and re-applies the samples), or restarts it cleanly.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kamal-operator/kamal-operator/test/framework"
)

// Files of a demo, all under bin/demo of the repository.
type paths struct {
	root       string // the repository
	dir        string // bin/demo
	lock       string // taken by up and down, so that they take turns
	supState   string // written by the supervisor
	supLog     string
	managerLog string
	kubeconfig string
	demoState  string // written by up: the hosts and options of the running demo
	overlay    string // the kustomize overlay applied
	manager    string // bin/manager
}

func newPaths() paths {
	root := framework.RepoRoot()
	dir := filepath.Join(root, "bin", "demo")
	return paths{
		root:       root,
		dir:        dir,
		lock:       filepath.Join(dir, "demo.lock"),
		supState:   filepath.Join(dir, "supervisor.json"),
		supLog:     filepath.Join(dir, "supervisor.log"),
		managerLog: filepath.Join(dir, "manager.log"),
		kubeconfig: filepath.Join(dir, "kubeconfig"),
		demoState:  filepath.Join(dir, "demo.json"),
		overlay:    filepath.Join(dir, "overlay"),
		manager:    filepath.Join(root, "bin", "manager"),
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, `usage: kamal-demo up|down|status [flags]

up      start (or reuse) the demo and leave it running
down    stop the controller and the control plane, remove the test hosts
status  show what runs

flags of up:
`)
	upFlags(new(upOpts)).PrintDefaults()
	os.Exit(2)
}

func upFlags(o *upOpts) *flag.FlagSet {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	fs.BoolVar(&o.skipAccessory, "skip-accessory", false, "leave out the Postgres Accessory (and the Deployment's dependsOn)")
	fs.StringVar(&o.hostName, "host", "dokuya.example.com", "host name the proxies route to the app")
	fs.DurationVar(&o.timeout, "timeout", time.Hour, "give up after (includes waiting for a test run that holds the test hosts, and a first run's Debian packages and Caddy build)")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", 6*time.Minute, "give up when the resources are not Ready after")
	fs.BoolVar(&o.restart, "restart", false, "restart from scratch even when a healthy demo runs")
	return fs
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	p := newPaths()
	var err error
	switch os.Args[1] {
	case "up":
		var o upOpts
		_ = upFlags(&o).Parse(os.Args[2:])
		err = up(p, o)
	case "down":
		fs := flag.NewFlagSet("down", flag.ExitOnError)
		_ = fs.Parse(os.Args[2:])
		err = downCmd(p)
	case "status":
		err = statusCmd(p)
	case "supervise":
		fs := flag.NewFlagSet("supervise", flag.ExitOnError)
		var o supOpts
		fs.StringVar(&o.proxyImage, "proxy-image", "", "the controller's --proxy-image")
		_ = fs.Parse(os.Args[2:])
		err = supervise(p, o)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
