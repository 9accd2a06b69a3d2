package controllers

import (
	"reflect"
	"testing"

	"github.com/moby/moby/api/types/container"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func labelled(name string, labels ...string) container.Summary {
	l := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		l[labels[i]] = labels[i+1]
	}
	return container.Summary{Names: []string{"/" + name}, Labels: l}
}

func TestHostUsersNamesWhatAServerWaitsFor(t *testing.T) {
	ns := kamalv1.LabelNamespace
	dep, acc := kamalv1.LabelDeployment, kamalv1.LabelAccessory
	containers := []container.Summary{
		labelled("web-web-v2", ns, "shop", dep, "web"),
		labelled("web-web-v1", ns, "shop", dep, "web"),
		labelled("jobs-worker-v1", ns, "shop", dep, "jobs"),
		labelled("db", ns, "shop", acc, "db"),
		labelled("db-setup", ns, "shop", acc, "db", kamalv1.LabelPrefix+"setup", "true"),
		labelled("old-web-v1", ns, "shop", dep, "old"),    // its Deployment is gone
		labelled("cache", ns, "shop", acc, "cache"),       // its Accessory is gone
		labelled("other-web-v1", ns, "other", dep, "web"), // another namespace's
		labelled("kamal-proxy", kamalv1.LabelManagedBy, kamalv1.ManagerName),
	}
	deployments := []kamalv1.Deployment{
		{ObjectMeta: metav1.ObjectMeta{Name: "web"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "jobs"}, Spec: kamalv1.DeploymentSpec{Suspend: true}},
		{ObjectMeta: metav1.ObjectMeta{Name: "idle"}}, // nothing of it on this host
	}
	now := metav1.Now()
	accessories := []kamalv1.Accessory{
		{ObjectMeta: metav1.ObjectMeta{Name: "db"}},
		// Being deleted and placed here: its containers are gone, its data folder may not be.
		{ObjectMeta: metav1.ObjectMeta{Name: "files", DeletionTimestamp: &now}, Spec: kamalv1.AccessorySpec{Servers: kamalv1.ServerSelector{Names: []string{"web-2"}}}},
		// Being deleted, placed elsewhere, nothing here.
		{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere", DeletionTimestamp: &now}, Spec: kamalv1.AccessorySpec{Servers: kamalv1.ServerSelector{Names: []string{"web-1"}}}},
	}
	srv := &kamalv1.Server{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-2", DeletionTimestamp: &now}}
	waits, orphans := hostUsers(srv, containers, deployments, accessories)
	wantWaits := []string{
		"Accessory db (2 containers)",
		"Accessory files (being deleted)",
		"Deployment jobs (1 container; suspended, it changes nothing on hosts until resumed or deleted)",
		"Deployment web (2 containers)",
	}
	if !reflect.DeepEqual(waits, wantWaits) {
		t.Errorf("waits\n got %q\nwant %q", waits, wantWaits)
	}
	if want := []string{"cache (Accessory cache)", "old-web-v1 (Deployment old)"}; !reflect.DeepEqual(orphans, want) {
		t.Errorf("orphans %q, want %q", orphans, want)
	}

	// Once they left, and the one being deleted is gone, nothing is waited for.
	waits, orphans = hostUsers(srv, containers[7:], deployments, accessories[:1])
	if len(waits) != 0 || len(orphans) != 0 {
		t.Errorf("after they left: %q %q", waits, orphans)
	}
}

func TestPlacedOnNamesWhatMayRunOnAnUnreachableHost(t *testing.T) {
	now := metav1.Now()
	srv := &kamalv1.Server{ObjectMeta: metav1.ObjectMeta{Name: "web-2", Labels: map[string]string{"tier": "web"}, DeletionTimestamp: &now}}
	web := kamalv1.ServerSelector{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}}
	deployments := []kamalv1.Deployment{
		{ObjectMeta: metav1.ObjectMeta{Name: "by-label"}, Spec: kamalv1.DeploymentSpec{Roles: map[string]kamalv1.Role{"web": {Servers: web}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"}, Spec: kamalv1.DeploymentSpec{Roles: map[string]kamalv1.Role{"web": {Servers: kamalv1.ServerSelector{Names: []string{"web-1"}}}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "moved-away"}, Spec: kamalv1.DeploymentSpec{Roles: map[string]kamalv1.Role{"web": {Servers: kamalv1.ServerSelector{Names: []string{"web-1"}}}}},
			Status: kamalv1.DeploymentStatus{Targets: []kamalv1.TargetStatus{{Server: "web-2", Role: "web"}}}},
	}
	accessories := []kamalv1.Accessory{
		{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Spec: kamalv1.AccessorySpec{Servers: kamalv1.ServerSelector{Names: []string{"web-2"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "cache"}, Spec: kamalv1.AccessorySpec{Servers: kamalv1.ServerSelector{Names: []string{"web-1"}}}},
	}
	want := []string{"Accessory db", "Deployment by-label", "Deployment moved-away"}
	if got := placedOn(srv, deployments, accessories); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLeavingMessage(t *testing.T) {
	for _, tc := range []struct {
		leaving map[string][]string
		want    string
	}{
		{nil, ""},
		{map[string][]string{"web": {"web-2"}}, "Server web-2 is being deleted: what ran there is removed"},
		{map[string][]string{"web": {"web-2", "web-3"}, "jobs": {"web-2"}}, "Servers web-2, web-3 are being deleted: what ran there is removed"},
	} {
		if got := leavingMessage(tc.leaving); got != tc.want {
			t.Errorf("%v: %q", tc.leaving, got)
		}
	}
}
