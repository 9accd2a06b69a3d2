package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// statusPatcher remembers an object as it was read, so one deferred call patches exactly what
// the reconcile changed in status.
type statusPatcher struct {
	client client.Client
	before client.Object
}

func newStatusPatcher(c client.Client, obj client.Object) *statusPatcher {
	return &statusPatcher{client: c, before: obj.DeepCopyObject().(client.Object)}
}

// patch sends a merge patch of the status when it changed. Merge patches replace lists whole,
// which is right for conditions owned by this controller alone. It patches a copy: the
// server's answer is decoded into that copy, never into obj, which other goroutines may read.
func (p *statusPatcher) patch(ctx context.Context, obj client.Object, statusOf func(client.Object) any) error {
	if equality.Semantic.DeepEqual(statusOf(p.before), statusOf(obj)) {
		return nil
	}
	sent := obj.DeepCopyObject().(client.Object)
	return client.IgnoreNotFound(p.client.Status().Patch(ctx, sent, client.MergeFrom(p.before)))
}
