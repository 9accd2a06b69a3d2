package conditions

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// want lists the expected status of Ready, Reconciling and Stalled; "" means absent.
type want struct{ ready, reconciling, stalled metav1.ConditionStatus }

func check(t *testing.T, conds []metav1.Condition, w want) {
	t.Helper()
	for typ, exp := range map[string]metav1.ConditionStatus{
		kamalv1.ConditionReady: w.ready, kamalv1.ConditionReconciling: w.reconciling, kamalv1.ConditionStalled: w.stalled,
	} {
		c := meta.FindStatusCondition(conds, typ)
		switch {
		case exp == "" && c != nil:
			t.Errorf("%s present (%s), want absent", typ, c.Status)
		case exp != "" && c == nil:
			t.Errorf("%s absent, want %s", typ, exp)
		case exp != "" && c.Status != exp:
			t.Errorf("%s = %s, want %s", typ, c.Status, exp)
		}
	}
}

func TestTransitionsKeepKstatusInvariants(t *testing.T) {
	var conds []metav1.Condition
	MarkUnknown(&conds, 1, "Pending", "")
	check(t, conds, want{ready: metav1.ConditionUnknown})

	MarkReconciling(&conds, 1, kamalv1.ReasonProgressing, "deploying")
	check(t, conds, want{ready: metav1.ConditionFalse, reconciling: metav1.ConditionTrue})

	MarkStalled(&conds, 1, kamalv1.ReasonSecretNotFound, "Secret deploy-key not found")
	check(t, conds, want{ready: metav1.ConditionFalse, stalled: metav1.ConditionTrue})
	if r := meta.FindStatusCondition(conds, kamalv1.ConditionReady); r.Reason != kamalv1.ReasonSecretNotFound {
		t.Errorf("Ready reason = %s, want the stall's reason", r.Reason)
	}

	MarkNotReady(&conds, 2, kamalv1.ReasonUnreachable, "dial tcp: refused")
	check(t, conds, want{ready: metav1.ConditionFalse, reconciling: metav1.ConditionTrue})

	MarkReady(&conds, 2, kamalv1.ReasonReconciled, "")
	check(t, conds, want{ready: metav1.ConditionTrue})
	if !IsReady(conds, 2) || IsReady(conds, 3) {
		t.Errorf("IsReady must hold for generation 2 only")
	}
}

func TestReconcilingKeepsSpecificNotReadyReason(t *testing.T) {
	var conds []metav1.Condition
	MarkNotReady(&conds, 4, kamalv1.ReasonHealthCheckFailed, "GET /up: 500")
	MarkReconciling(&conds, 4, kamalv1.ReasonProgressing, "retrying")
	if r := meta.FindStatusCondition(conds, kamalv1.ConditionReady); r.Reason != kamalv1.ReasonHealthCheckFailed {
		t.Errorf("Ready reason = %s, want the more specific %s kept", r.Reason, kamalv1.ReasonHealthCheckFailed)
	}
	// A newer generation replaces it: the old reason may no longer apply.
	MarkReconciling(&conds, 5, kamalv1.ReasonProgressing, "new spec")
	if r := meta.FindStatusCondition(conds, kamalv1.ConditionReady); r.Reason != kamalv1.ReasonProgressing || r.ObservedGeneration != 5 {
		t.Errorf("Ready = %s/%d, want Progressing for generation 5", r.Reason, r.ObservedGeneration)
	}
}
