package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// delayedWakes gathers wakes of one object into one, sent after a delay: the first add
// starts the timer, later adds before it fires join it.
type delayedWakes struct {
	delay time.Duration
	wake  func(namespace, name string)

	mu      sync.Mutex
	pending map[types.NamespacedName]bool
}

func newDelayedWakes(delay time.Duration, wake func(namespace, name string)) *delayedWakes {
	return &delayedWakes{delay: delay, wake: wake, pending: map[types.NamespacedName]bool{}}
}

// add wakes namespace/name within the delay, once however often it is called meanwhile.
func (w *delayedWakes) add(namespace, name string) {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pending[key] {
		return
	}
	w.pending[key] = true
	time.AfterFunc(w.delay, func() {
		w.mu.Lock()
		delete(w.pending, key)
		w.mu.Unlock()
		w.wake(namespace, name)
	})
}
