// Package conditions sets status conditions the way kstatus reads them: Ready always present,
// Reconciling present only while work is under way, Stalled present only while retrying will not
// help. Each setter keeps the three consistent, so a reconciler cannot leave a contradiction.
package conditions

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// Set sets one condition with the given generation; LastTransitionTime moves only when the
// status changes.
func Set(conds *[]metav1.Condition, generation int64, typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: generation,
	})
}

// MarkReady says the object has converged: Ready=True, no Reconciling, no Stalled.
func MarkReady(conds *[]metav1.Condition, generation int64, reason, message string) {
	Set(conds, generation, kamalv1.ConditionReady, metav1.ConditionTrue, reason, message)
	meta.RemoveStatusCondition(conds, kamalv1.ConditionReconciling)
	meta.RemoveStatusCondition(conds, kamalv1.ConditionStalled)
}

// MarkReconciling says work is under way: Reconciling=True, Ready=False with the same reason
// (unless Ready already says False for a more specific reason), no Stalled.
func MarkReconciling(conds *[]metav1.Condition, generation int64, reason, message string) {
	Set(conds, generation, kamalv1.ConditionReconciling, metav1.ConditionTrue, reason, message)
	meta.RemoveStatusCondition(conds, kamalv1.ConditionStalled)
	if r := meta.FindStatusCondition(*conds, kamalv1.ConditionReady); r == nil || r.Status != metav1.ConditionFalse || r.ObservedGeneration != generation {
		Set(conds, generation, kamalv1.ConditionReady, metav1.ConditionFalse, reason, message)
	}
}

// MarkNotReady says the object has not converged for a reason that retrying may fix (a host is
// unreachable, a health check failed): Ready=False, Reconciling=True with the same reason.
func MarkNotReady(conds *[]metav1.Condition, generation int64, reason, message string) {
	Set(conds, generation, kamalv1.ConditionReady, metav1.ConditionFalse, reason, message)
	Set(conds, generation, kamalv1.ConditionReconciling, metav1.ConditionTrue, reason, message)
	meta.RemoveStatusCondition(conds, kamalv1.ConditionStalled)
}

// MarkStalled says the object cannot progress until its spec or a referenced object changes:
// Stalled=True, Ready=False, no Reconciling.
func MarkStalled(conds *[]metav1.Condition, generation int64, reason, message string) {
	Set(conds, generation, kamalv1.ConditionStalled, metav1.ConditionTrue, reason, message)
	Set(conds, generation, kamalv1.ConditionReady, metav1.ConditionFalse, reason, message)
	meta.RemoveStatusCondition(conds, kamalv1.ConditionReconciling)
}

// MarkUnknown says nothing is known yet: Ready=Unknown, no Reconciling, no Stalled.
func MarkUnknown(conds *[]metav1.Condition, generation int64, reason, message string) {
	Set(conds, generation, kamalv1.ConditionReady, metav1.ConditionUnknown, reason, message)
	meta.RemoveStatusCondition(conds, kamalv1.ConditionReconciling)
	meta.RemoveStatusCondition(conds, kamalv1.ConditionStalled)
}

// IsReady reports whether Ready is True for the given generation.
func IsReady(conds []metav1.Condition, generation int64) bool {
	c := meta.FindStatusCondition(conds, kamalv1.ConditionReady)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == generation
}
