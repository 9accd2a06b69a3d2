package plugin

import (
	"bytes"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestGitOpsManager(t *testing.T) {
	for _, c := range []struct {
		name                string
		labels, annotations map[string]string
		want                string
	}{
		{"plain", nil, nil, ""},
		{"unrelated labels", map[string]string{"app": "dokuya", "tier": "web"}, map[string]string{"note": "x"}, ""},
		{"argo annotation tracking", nil, map[string]string{"argocd.argoproj.io/tracking-id": "shop:kamal.operator.dev/Deployment:prod/dokuya"}, "Argo CD (annotation argocd.argoproj.io/tracking-id=shop:kamal.operator.dev/Deployment:prod/dokuya)"},
		{"argo custom instance label", map[string]string{"argocd.argoproj.io/instance": "shop"}, nil, "Argo CD (label argocd.argoproj.io/instance=shop)"},
		{"argo label tracking", map[string]string{"app.kubernetes.io/instance": "shop"}, nil, "Argo CD (label app.kubernetes.io/instance=shop)"},
		{"helm's instance label is not argo", map[string]string{"app.kubernetes.io/instance": "shop", "app.kubernetes.io/managed-by": "Helm"}, nil, ""},
		{"flux kustomization", map[string]string{"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}, nil, "Flux (label kustomize.toolkit.fluxcd.io/name=apps)"},
		{"flux helm release", map[string]string{"helm.toolkit.fluxcd.io/name": "shop", "app.kubernetes.io/instance": "shop", "app.kubernetes.io/managed-by": "Helm"}, nil, "Flux (label helm.toolkit.fluxcd.io/name=shop)"},
		{"a label named like the annotation does not count", map[string]string{"argocd.argoproj.io/tracking-id": "x"}, nil, ""},
	} {
		obj := &metav1.ObjectMeta{Labels: c.labels, Annotations: c.annotations}
		if got := gitOpsManager(obj); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestWarnGitOps(t *testing.T) {
	var b bytes.Buffer
	warnGitOps(&b, "deployment dokuya", &metav1.ObjectMeta{})
	if b.Len() != 0 {
		t.Errorf("warned about an object no GitOps tool applies: %q", b.String())
	}
	warnGitOps(&b, "deployment dokuya", &metav1.ObjectMeta{Labels: map[string]string{"kustomize.toolkit.fluxcd.io/name": "apps"}})
	if got := b.String(); !strings.HasPrefix(got, "Warning: deployment dokuya is managed by Flux") || !strings.Contains(got, "Git") {
		t.Errorf("warning %q", got)
	}
}
