package plugin

import (
	"fmt"
	"io"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// gitOpsMarkers are the labels and annotations Argo CD and Flux put on what they apply, in the
// order they are reported. app.kubernetes.io/instance is Argo CD's label tracking (its default
// before 3.0) but Helm charts set it too, so it only counts without Helm's managed-by.
var gitOpsMarkers = []struct {
	annotation bool
	key, tool  string
}{
	{true, "argocd.argoproj.io/tracking-id", "Argo CD"},
	{false, "argocd.argoproj.io/instance", "Argo CD"},
	{false, "kustomize.toolkit.fluxcd.io/name", "Flux"},
	{false, "helm.toolkit.fluxcd.io/name", "Flux"},
	{false, "app.kubernetes.io/instance", "Argo CD"},
}

// gitOpsManager names the GitOps tool that applies obj and the marker that says so ("" when
// none does), e.g. "Argo CD (annotation argocd.argoproj.io/tracking-id)".
func gitOpsManager(obj metav1.Object) string {
	for _, m := range gitOpsMarkers {
		var v string
		if m.annotation {
			v = obj.GetAnnotations()[m.key]
		} else {
			v = obj.GetLabels()[m.key]
		}
		if v == "" {
			continue
		}
		if m.key == "app.kubernetes.io/instance" && obj.GetLabels()["app.kubernetes.io/managed-by"] == "Helm" {
			continue
		}
		kind := "label"
		if m.annotation {
			kind = "annotation"
		}
		return fmt.Sprintf("%s (%s %s=%s)", m.tool, kind, m.key, v)
	}
	return ""
}

// warnGitOps tells, on w, that a change made by hand to an object a GitOps tool applies lasts
// only until its next sync unless Git says the same.
func warnGitOps(w io.Writer, what string, obj metav1.Object) {
	if by := gitOpsManager(obj); by != "" {
		fmt.Fprintf(w, "Warning: %s is managed by %s: its next sync may revert this change; commit it to Git to keep it.\n", what, by)
	}
}
