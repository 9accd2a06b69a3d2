package controllers

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func readyReason(conds []metav1.Condition) string {
	if c := meta.FindStatusCondition(conds, kamalv1.ConditionReady); c != nil {
		return string(c.Status) + "/" + c.Reason
	}
	return ""
}

// emitReadyTransition records an event when Ready changes status or reason, so
// `kubectl describe` tells the story without an event per reconcile.
func emitReadyTransition(rec events.EventRecorder, obj runtime.Object, before string, conds []metav1.Condition) {
	if rec == nil || readyReason(conds) == before {
		return
	}
	c := meta.FindStatusCondition(conds, kamalv1.ConditionReady)
	if c == nil {
		return
	}
	typ := "Normal"
	if c.Status == metav1.ConditionFalse {
		typ = "Warning"
	}
	rec.Eventf(obj, nil, typ, c.Reason, "Reconcile", "%s", c.Message)
}

// maxEventNote is the API server's limit on an event's note: a longer one is refused and the
// event lost.
const maxEventNote = 1024

// boundedNotes cuts every event's note to what the API server accepts, so an event about many
// hosts is recorded cut rather than dropped.
type boundedNotes struct{ events.EventRecorder }

func (b boundedNotes) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...interface{}) {
	b.EventRecorder.Eventf(regarding, related, eventtype, reason, action, "%s", truncate(fmt.Sprintf(note, args...), maxEventNote))
}
