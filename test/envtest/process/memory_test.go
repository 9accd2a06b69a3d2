package process

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/test/framework"
)

const (
	noiseSecrets    = 5000
	noiseSize       = 10 << 10
	noiseNamespaces = 5
	// maxGrowth bounds how much more resident memory a manager holds, once settled, with the
	// noise than one that does not see it. Measured (README, "Memory"): 4–9 MiB, of which
	// about 2 MB is live heap (some 400 bytes per Secret: its trimmed metadata in the cache)
	// and the rest Go's heap target, twice the live heap. When the cache held whole Secrets:
	// 186 MiB.
	maxGrowth = 10 << 20
	// maxPeak bounds how much higher the peak of a manager starting among the noise is than
	// that of one that does not see it: the metadata of every Secret, last-applied annotation
	// and all, passes through it while it syncs. Measured: 18–22 MiB; 197 MiB when the cache
	// held whole Secrets.
	maxPeak = 32 << 20
	// settleWithin bounds the wait for a manager's memory to settle after a burst: Go collects
	// at least every 2 minutes, and then returns what it does not need to the system.
	settleWithin = 3 * time.Minute
)

// memory is the resident memory of process pid and its peak, in bytes.
func memory(t *testing.T, pid int) (rss, peak int64) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, v, _ := strings.Cut(sc.Text(), ":")
		if name != "VmRSS" && name != "VmHWM" {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	if rss == 0 || peak == 0 {
		t.Fatalf("no VmRSS and VmHWM for process %d", pid)
	}
	return rss, peak
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// waitServer waits until the Server's Ready condition has reason.
func waitServer(t *testing.T, c client.Client, srv *kamalv1.Server, reason string) {
	t.Helper()
	framework.Eventually(t, time.Minute, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(srv), srv); err != nil {
			return err
		}
		if r := meta.FindStatusCondition(srv.Status.Conditions, kamalv1.ConditionReady); r == nil || r.Reason != reason || r.ObservedGeneration != srv.Generation {
			return fmt.Errorf("Ready = %+v, want reason %s for generation %d", r, reason, srv.Generation)
		}
		return nil
	})
}

// createNoise creates n Secrets of size bytes each, spread over namespaces, with a few
// parallel writers. Each carries its data a second time in kubectl's last-applied annotation,
// as a Secret applied with kubectl does.
func createNoise(t *testing.T, c client.Client, namespaces []string, n, size int) {
	t.Helper()
	const workers = 8
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				data := make([]byte, size)
				_, _ = rand.Read(data)
				s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespaces[i%len(namespaces)], Name: fmt.Sprintf("noise-%05d", i)},
					Data: map[string][]byte{"blob": data}}
				applied, err := json.Marshal(s)
				if err != nil {
					errs <- err
					return
				}
				s.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": string(applied)}
				if err := c.Create(context.Background(), s); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	go func() {
		defer close(next)
		for i := range n {
			select {
			case next <- i:
			case err := <-errs:
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("creating Secrets: %v", err)
	default:
	}
}

// With 5,000 Secrets of 10 KiB that no object names, the manager's resident memory settles
// within a few MiB of a manager's that does not see them, whether they were created while it
// ran or it started among them; and a Secret that a Server names still wakes the Server.
//
// The manager without them is a control run alongside, from the same binary, through the same
// steps, but watching only the Server's namespace (--watch-namespaces): the two are compared
// at the same moments, so that the Go runtime's own swings (a garbage collection at least every
// two minutes, memory returned to the system after it) count on both sides.
func TestUnrelatedSecretsDoNotGrowTheController(t *testing.T) {
	ctx := context.Background()
	cfg := rest.CopyConfig(cp.Config)
	cfg.QPS = -1 // no client-side rate limit: the noise is written as fast as the API server takes it
	c, err := client.New(cfg, client.Options{Scheme: framework.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	nsNames := []string{framework.ControllerNamespace, "app"}
	for i := range noiseNamespaces {
		nsNames = append(nsNames, fmt.Sprintf("noise-%d", i))
	}
	for _, ns := range nsNames {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	srv := &kamalv1.Server{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web-1"},
		Spec: kamalv1.ServerSpec{Address: "127.0.0.1", Port: 1, SSHKeySecretRef: corev1.LocalObjectReference{Name: "deploy-key"},
			KnownHosts: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOuHlvosK/zgfTl3qHCDzrACo1uGYFrzR3z8sPm53zg/"}},
	}
	if err := c.Create(ctx, srv); err != nil {
		t.Fatal(err)
	}
	control := startManager(t, cp.Kubeconfig, "--watch-namespaces=app")
	first := startManager(t, cp.Kubeconfig)
	control.waitSynced(t)
	first.waitSynced(t)

	// The Server names a Secret that is missing: its condition says the managers reconcile.
	waitServer(t, c, srv, kamalv1.ReasonSecretNotFound)
	t0 := time.Now()
	createNoise(t, c, nsNames[2:], noiseSecrets, noiseSize)
	took := time.Since(t0)

	// The Server's Secret, created after the noise, reaches the first manager after all of it
	// (one watch of Secrets, in order): once the Server says the Secret is of the wrong type,
	// the manager has seen every Secret of the noise.
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "deploy-key"}, StringData: map[string]string{"x": "y"}}); err != nil {
		t.Fatal(err)
	}
	waitServer(t, c, srv, kamalv1.ReasonInvalidSecret)
	without, _ := memory(t, control.pid)
	with, _ := memory(t, first.pid)
	t.Logf("created %d Secrets of %d KiB (and their last-applied annotation) in %s; right after them, manager RSS %s, %s without them (%+.1f MiB)",
		noiseSecrets, noiseSize>>10, took.Round(100*time.Millisecond), mib(with), mib(without), float64(with-without)/(1<<20))

	// A second manager starts among them, while the others settle.
	second := startManager(t, cp.Kubeconfig)
	second.waitSynced(t)
	_, peak := memory(t, second.pid)
	t0 = time.Now()
	var rss [3]int64
	framework.Eventually(t, settleWithin, func() error {
		for i, m := range []*manager{control, first, second} {
			rss[i], _ = memory(t, m.pid)
		}
		for i, name := range []string{"the manager that saw them created", "the manager started among them"} {
			if rss[i+1]-rss[0] > maxGrowth {
				return fmt.Errorf("%s holds %s, %+.1f MiB over %s without them", name, mib(rss[i+1]), float64(rss[i+1]-rss[0])/(1<<20), mib(rss[0]))
			}
		}
		return nil
	})
	_, peak2 := memory(t, second.pid)
	_, controlPeak := memory(t, control.pid)
	peak = max(peak, peak2)
	t.Logf("settled within %s: %s without them; %s (%+.1f MiB) for the manager that saw them created, %s (%+.1f MiB) for the one started among them; peaks %s and %s without them",
		time.Since(t0).Round(time.Second), mib(rss[0]), mib(rss[1]), float64(rss[1]-rss[0])/(1<<20), mib(rss[2]), float64(rss[2]-rss[0])/(1<<20), mib(peak), mib(controlPeak))
	if peak-controlPeak > maxPeak {
		t.Errorf("the manager started among Secrets nothing names peaked at %s, %s above the peak of one without them, more than %s", mib(peak), mib(peak-controlPeak), mib(maxPeak))
	}
}
