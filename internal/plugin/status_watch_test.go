package plugin

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// drawings are the renderings follow wrote to a non-terminal, a blank line apart.
func drawings(out string) []string {
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n\nName:")
}

func eventually(t *testing.T, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFollowRedrawsOnChangesAndEndsOnCancel(t *testing.T) {
	d := rollingOut()
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(d).WithStatusSubresource(d).
		WithIndex(&corev1.Event{}, "involvedObject.uid", func(o client.Object) []string {
			return []string{string(o.(*corev1.Event).InvolvedObject.UID)}
		}).Build()
	s := &statusReader{c: c, ns: "shop", arg: "dokuya", errOut: io.Discard}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- s.follow(ctx, &out) }()
	count := func(n int, has string) func() error {
		return func() error {
			ds := drawings(out.String())
			if len(ds) != n || !strings.Contains(ds[n-1], has) {
				return fmt.Errorf("%d drawings, want %d, the last with %q:\n%s", len(ds), n, has, out.String())
			}
			return nil
		}
	}
	eventually(t, count(1, "◌ Progressing"))

	// A change status does not show draws nothing; the rollout completing draws once more.
	ctx2 := context.Background()
	if err := c.Get(ctx2, client.ObjectKeyFromObject(d), d); err != nil {
		t.Fatal(err)
	}
	d.Annotations = map[string]string{"note": "not shown"}
	if err := c.Update(ctx2, d); err != nil {
		t.Fatal(err)
	}
	d.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: "True", Reason: "Reconciled", Message: "4/4 on v2", LastTransitionTime: metav1.Now()}}
	d.Status.Image, d.Status.Version = d.Spec.Image, "v2"
	if err := c.Status().Update(ctx2, d); err != nil {
		t.Fatal(err)
	}
	eventually(t, count(2, "✔ Healthy"))

	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: "shop", Name: "dokuya.1"},
		InvolvedObject: corev1.ObjectReference{Kind: "Deployment", Namespace: "shop", Name: "dokuya", UID: d.UID},
		Type:           "Normal", Reason: "RolloutComplete", Message: "v2 serves on 4 targets", EventTime: metav1.NowMicro(),
	}
	if err := c.Create(ctx2, ev); err != nil {
		t.Fatal(err)
	}
	eventually(t, count(3, "RolloutComplete"))
	if strings.Contains(out.String(), "\x1b[") {
		t.Error("cleared the screen of a non-terminal")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("follow ended with %v on cancel, want none", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end on cancel")
	}
}

func TestFollowEndsWhenTheObjectIsDeleted(t *testing.T) {
	d := rollingOut()
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(d).
		WithIndex(&corev1.Event{}, "involvedObject.uid", func(o client.Object) []string {
			return []string{string(o.(*corev1.Event).InvolvedObject.UID)}
		}).Build()
	s := &statusReader{c: c, ns: "shop", arg: "deployment/dokuya", errOut: io.Discard}
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- s.follow(context.Background(), &out) }()
	eventually(t, func() error {
		if len(drawings(out.String())) != 1 {
			return fmt.Errorf("nothing drawn yet")
		}
		return nil
	})
	eventually(t, func() error {
		if err := c.Delete(context.Background(), &kamalv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "dokuya"}}); err != nil {
			return fmt.Errorf("not deleted yet: %w", err)
		}
		return nil
	})
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "Deployment shop/dokuya was deleted") {
			t.Errorf("follow ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end when the object was deleted")
	}
}
