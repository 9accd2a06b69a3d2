// Command manager runs the kamal-operator controllers.
package main

import (
	"crypto/tls"
	"flag"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/controllers"
	"github.com/kamal-operator/kamal-operator/internal/acme"
	"github.com/kamal-operator/kamal-operator/internal/oneoff"
	"github.com/kamal-operator/kamal-operator/internal/remote"
	"github.com/kamal-operator/kamal-operator/internal/tenancy"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(kamalv1.AddToScheme(scheme))
}

func main() {
	var (
		metricsAddr, probeAddr string
		pprofAddr              string
		leaderElect, secure    bool
		enableHTTP2            bool
		proxyImage             string
		namespace              string
		guests                 tenancy.GuestPolicy
		guestPaths             string
		watchNamespaces        string
		oneOffExited           time.Duration
		oneOffRunning          time.Duration
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "Address of the metrics endpoint (e.g. :8443 for HTTPS, :8080 for HTTP); 0 turns it off.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the health and readiness probes.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "", "Address of Go's pprof endpoints (e.g. 127.0.0.1:6060), to see where memory and CPU go in a large fleet; off when empty.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so that only one of several replicas reconciles.")
	flag.BoolVar(&secure, "metrics-secure", true, "Serve metrics over HTTPS with authentication and authorization.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false, "Allow HTTP/2 on the metrics server (off by default against HTTP/2 stream attacks).")
	flag.StringVar(&proxyImage, "proxy-image", controllers.DefaultProxyImage, "Proxy (Caddy) image for Servers whose spec names none.")
	flag.StringVar(&namespace, "namespace", defaultNamespace(), "The controller's own namespace, which holds the known-hosts store (ConfigMap "+controllers.KnownHostsConfigMap+") of host keys trusted on first use; default: $POD_NAMESPACE, else "+controllers.DefaultNamespace+".")
	// The guest policy: what Deployments and Accessories placed on a Server of another namespace
	// may ask of its host. Everything is refused by default.
	flag.StringVar(&guestPaths, tenancy.FlagHostPathPrefixes, "", "Comma-separated host folders under which guests may bind host paths (volumes, absolute accessory directories); default: none.")
	flag.BoolVar(&guests.Privileged, tenancy.FlagPrivileged, false, "Let guests run privileged containers.")
	flag.BoolVar(&guests.CapAdd, tenancy.FlagCapAdd, false, "Let guests add Linux capabilities (options.capAdd).")
	flag.BoolVar(&guests.Devices, tenancy.FlagDevices, false, "Let guests map host devices (options.devices).")
	flag.BoolVar(&guests.NamedVolumes, tenancy.FlagNamedVolumes, false, "Let guests mount named Docker volumes, which every namespace on a host shares by name.")
	flag.StringVar(&watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces whose Servers, Deployments and Accessories (and the Secrets and ConfigMaps they name) the controller watches; empty: all. Its own --namespace is always watched.")
	flag.DurationVar(&oneOffExited, "one-off-exited-grace", oneoff.DefaultExitedGrace, "How long after its creation an exited one-off container of kubectl kamal (exec without --reuse) is left on a host before the controller removes it; the plugin removes its own when it ends.")
	flag.DurationVar(&oneOffRunning, "one-off-running-grace", oneoff.DefaultRunningGrace, "How long after its creation a still running one-off container of kubectl kamal (an interactive session whose plugin was killed) is left on a host before the controller removes it.")
	var tuning controllers.Options
	flag.IntVar(&tuning.DeploymentWorkers, "deployment-workers", controllers.DefaultDeploymentWorkers, "How many Deployments are reconciled at once.")
	flag.IntVar(&tuning.ServerWorkers, "server-workers", controllers.DefaultServerWorkers, "How many Servers are reconciled at once.")
	flag.IntVar(&tuning.AccessoryWorkers, "accessory-workers", controllers.DefaultAccessoryWorkers, "How many Accessories are reconciled at once.")
	flag.DurationVar(&tuning.DeploymentResync, "deployment-resync", controllers.DefaultDeploymentResync, "How long after a pass that found nothing to do a Deployment is looked at again (the safety net behind watches and docker events).")
	flag.DurationVar(&tuning.ServerResync, "server-resync", controllers.DefaultServerResync, "How long after a pass that found nothing to do a Server is looked at again.")
	flag.DurationVar(&tuning.AccessoryResync, "accessory-resync", controllers.DefaultAccessoryResync, "How long after a pass that found nothing to do an Accessory is looked at again.")
	flag.IntVar(&tuning.MaxConcurrentDials, "max-concurrent-dials", remote.DefaultMaxConcurrentDials, "How many SSH connections to hosts are opened at once (others wait their turn; a host that fails is retried with backoff); -1: no bound.")
	opts := zap.Options{Development: false}
	var acmeOpts controllers.ACMEOptions
	var acmeCABundle string
	flag.StringVar(&acmeOpts.DirectoryURL, "acme-directory", acme.LetsEncryptURL, "ACME directory of the CA issuing automatic certificates (proxy.ssl without sslCertificateSecretRef).")
	flag.StringVar(&acmeOpts.Email, "acme-email", "", "Contact email of the ACME account (optional; the CA's expiry notices go to it).")
	flag.StringVar(&acmeCABundle, "acme-ca-bundle", "", "PEM file of CA certificates trusted for the ACME directory, beside the system's (for a private CA).")
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")
	var err error
	if guests.HostPathPrefixes, err = tenancy.ParseHostPathPrefixes(guestPaths); err != nil {
		log.Error(err, "invalid guest policy")
		os.Exit(1)
	}

	var tlsOpts []func(*tls.Config)
	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: secure, TLSOpts: tlsOpts}
	if secure {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	watch, err := controllers.ParseWatchNamespaces(watchNamespaces)
	if err != nil {
		log.Error(err, "invalid flag")
		os.Exit(2)
	}
	if acmeCABundle != "" {
		if acmeOpts.CABundle, err = os.ReadFile(acmeCABundle); err != nil {
			log.Error(err, "invalid flag --acme-ca-bundle")
			os.Exit(2)
		}
	}
	ctrlOpts := controllers.Options{DefaultProxyImage: proxyImage, Namespace: namespace, WatchNamespaces: watch, Guests: guests,
		OneOffExitedGrace: oneOffExited, OneOffRunningGrace: oneOffRunning, ACME: acmeOpts,
		DeploymentWorkers: tuning.DeploymentWorkers, ServerWorkers: tuning.ServerWorkers, AccessoryWorkers: tuning.AccessoryWorkers,
		DeploymentResync: tuning.DeploymentResync, ServerResync: tuning.ServerResync, AccessoryResync: tuning.AccessoryResync,
		MaxConcurrentDials: tuning.MaxConcurrentDials}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), controllers.ManagerOptions(ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  probeAddr,
		PprofBindAddress:        pprofAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "kamal-operator.kamal.operator.dev",
		LeaderElectionNamespace: namespace,
	}, ctrlOpts))
	if err != nil {
		log.Error(err, "unable to create manager")
		os.Exit(1)
	}
	ctx := ctrl.SetupSignalHandler()
	if _, err := controllers.Setup(ctx, mgr, ctrlOpts); err != nil {
		log.Error(err, "unable to set up controllers")
		os.Exit(1)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up ready check")
		os.Exit(1)
	}
	log.Info("starting manager", "watchNamespaces", watch)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

// defaultNamespace is $POD_NAMESPACE (config/manager sets it from the pod's namespace), else
// controllers.DefaultNamespace.
func defaultNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return controllers.DefaultNamespace
}
