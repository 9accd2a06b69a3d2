package kamalimport

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	corev1 "k8s.io/api/core/v1"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

const testdata = "../../test/testdata/kamal"

// fixtures loads the test configs into a MapFS, so the package reads nothing else.
func fixtures(t *testing.T) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	err := filepath.Walk(testdata, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(testdata, p)
		fsys[rel] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

func env(kv ...string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		for i := 0; i < len(kv); i += 2 {
			if kv[i] == k {
				return kv[i+1], true
			}
		}
		return "", false
	}
}

type objects struct {
	secrets     map[string]*corev1.Secret
	servers     map[string]*kamalv1.Server
	accessories map[string]*kamalv1.Accessory
	dep         *kamalv1.Deployment
	kinds       []string
}

func split(t *testing.T, r *Result) objects {
	t.Helper()
	o := objects{secrets: map[string]*corev1.Secret{}, servers: map[string]*kamalv1.Server{}, accessories: map[string]*kamalv1.Accessory{}}
	for _, obj := range r.Objects {
		switch x := obj.Object.(type) {
		case *corev1.Secret:
			o.secrets[x.Name] = x
			o.kinds = append(o.kinds, "Secret")
		case *kamalv1.Server:
			o.servers[x.Name] = x
			o.kinds = append(o.kinds, "Server")
		case *kamalv1.Accessory:
			o.accessories[x.Name] = x
			o.kinds = append(o.kinds, "Accessory")
		case *kamalv1.Deployment:
			o.dep = x
			o.kinds = append(o.kinds, "Deployment")
		}
	}
	return o
}

func warned(r *Result, key, part string) bool {
	for _, w := range r.Warnings {
		if w.Key == key && strings.Contains(w.Message, part) {
			return true
		}
	}
	return false
}

func TestDokuya(t *testing.T) {
	r, err := Import(Input{FS: fixtures(t), ConfigPath: "dokuya-deploy.yml", Tag: "2f3c9a1", Namespace: "dokuya"})
	if err != nil {
		t.Fatal(err)
	}
	o := split(t, r)
	if got := strings.Join(o.kinds, ","); got != "Secret,Secret,Server,Accessory,Deployment" {
		t.Errorf("order = %s", got)
	}
	srv := o.servers["185-194-123-12"]
	if srv == nil || srv.Spec.Address != "185.194.123.12" || srv.Spec.HostKeyPolicy != kamalv1.HostKeyTrustOnFirstUse ||
		srv.Spec.SSHKeySecretRef.Name != "dokuya-ssh-key" || srv.Labels[RoleLabelPrefix+"web"] != "true" || srv.Namespace != "dokuya" {
		t.Fatalf("server = %+v", srv)
	}
	d := o.dep
	if d.Name != "dokuya" || d.Spec.Image != "docker.io/shuirong/dokuya:2f3c9a1" || d.Spec.ImagePullSecrets[0].Name != "dokuya-registry" {
		t.Errorf("deployment = %+v", d.Spec)
	}
	if sel := d.Spec.Roles["web"].Servers.Selector; sel == nil || sel.MatchLabels[RoleLabelPrefix+"web"] != "true" {
		t.Errorf("web role selects %+v", d.Spec.Roles["web"].Servers)
	}
	envs := map[string]kamalv1.EnvVar{}
	for _, e := range d.Spec.Env {
		envs[e.Name] = e
	}
	if envs["PHX_HOST"].Value != "0.0.0.0" || envs["XAI_API_KEY"].ValueFrom.SecretKeyRef.Name != "dokuya-secrets" {
		t.Errorf("env = %+v", d.Spec.Env)
	}
	acc := o.accessories["dokuya-postgres"]
	if acc == nil || acc.Spec.Image != "postgres:15" || acc.Spec.Port.String() != "127.0.0.1:5432:5432" ||
		acc.Spec.Servers.Names[0] != "185-194-123-12" || acc.Spec.Directories[0] != "data:/var/lib/postgresql/data" {
		t.Fatalf("accessory = %+v", acc)
	}
	if d.Spec.DependsOn[0].Name != "dokuya-postgres" {
		t.Errorf("dependsOn = %v", d.Spec.DependsOn)
	}
	sec := o.secrets["dokuya-secrets"]
	if sec.Type != corev1.SecretTypeOpaque || sec.StringData["POSTGRES_PASSWORD"] != Placeholder || len(sec.StringData) != 3 {
		t.Errorf("env secret = %+v", sec)
	}
	reg := o.secrets["dokuya-registry"]
	if reg.Type != corev1.SecretTypeDockerConfigJson || !strings.Contains(reg.StringData[".dockerconfigjson"], `"https://index.docker.io/v1/":{"password":"REPLACE_ME","username":"shuirong"}`) {
		t.Errorf("registry secret = %+v", reg)
	}
	for key, part := range map[string]string{
		"builder":       "out of scope for import",
		"ssh.keys":      "never read",
		"aliases.shell": "kubectl kamal shell dokuya or kubectl kamal exec dokuya -it --reuse -- bash",
		"aliases.logs":  "kubectl kamal logs dokuya",
	} {
		if !warned(r, key, part) {
			t.Errorf("no warning %s: …%s…; got %v", key, part, r.Warnings)
		}
	}
	y, err := r.YAML()
	if err != nil {
		t.Fatal(err)
	}
	out := string(y)
	for _, want := range []string{
		"kubectl create secret generic dokuya-ssh-key --type=kubernetes.io/ssh-auth --from-file=ssh-privatekey=$HOME/.ssh/id_ed25519 -n dokuya",
		"ssh-keyscan -t ed25519 185.194.123.12", "hostKeyPolicy: TrustOnFirstUse",
		"kubectl kamal exec dokuya -it --reuse -- bash",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "status:") || strings.Contains(out, "creationTimestamp") {
		t.Errorf("output has status or creationTimestamp:\n%s", out)
	}
	// Deterministic: the same input prints the same bytes.
	r2, _ := Import(Input{FS: fixtures(t), ConfigPath: "dokuya-deploy.yml", Tag: "2f3c9a1", Namespace: "dokuya"})
	if y2, _ := r2.YAML(); string(y2) != out {
		t.Error("two imports of the same config differ")
	}
}

func TestShop(t *testing.T) {
	r, err := Import(Input{FS: fixtures(t), ConfigPath: "shop/config/deploy.yml", Tag: "v42", SecretsPath: "shop/.kamal/secrets", Getenv: env("RELEASE_NAME", "spring")})
	if err != nil {
		t.Fatal(err)
	}
	o := split(t, r)
	d := o.dep
	if d.Spec.Image != "ghcr.io/acme/shop:v42" {
		t.Errorf("image = %s: registry.server is prefixed", d.Spec.Image)
	}
	jobs, web := d.Spec.Roles["jobs"], d.Spec.Roles["web"]
	if strings.Join(jobs.Cmd, "|") != "bin/jobs|--queue|default mailers" {
		t.Errorf("jobs cmd = %q", jobs.Cmd)
	}
	if jobs.Options == nil || jobs.Options.Resources.Memory.String() != "2Gi" || jobs.Options.Resources.CPUs.String() != "2" ||
		jobs.Options.RestartPolicy != kamalv1.RestartOnFailure || *jobs.Options.RestartMaxRetries != 5 {
		t.Errorf("jobs options = %+v", jobs.Options)
	}
	if web.Labels["team"] != "storefront" || d.Spec.Labels["app"] != "shop" {
		t.Errorf("labels: web %v, app %v", web.Labels, d.Spec.Labels)
	}
	p := d.Spec.Proxy
	if strings.Join(p.Hosts, ",") != "shop.example.com,www.shop.example.com" || *p.AppPort != 3000 || !*p.SSL || *p.SSLRedirect ||
		!*p.ForwardHeaders || p.ResponseTimeout.Duration.String() != "45s" || p.PathPrefixes[0] != "/store" ||
		p.Healthcheck.Path != "/healthz" || p.Healthcheck.Interval.Duration.String() != "2s" || p.Healthcheck.Timeout.Duration.String() != "4s" ||
		!*p.Buffering.Requests || *p.Buffering.Responses || p.Buffering.MaxRequestBody.Value() != 40_000_000 ||
		p.Buffering.Memory.Value() != 2_000_000 || p.Logging.RequestHeaders[0] != "X-Request-Id" {
		t.Errorf("proxy = %+v", p)
	}
	ro := d.Spec.Rollout
	if ro.MaxParallel.String() != "25%" || ro.Wait.Duration.String() != "5s" || ro.DeployTimeout.Duration.String() != "1m0s" ||
		ro.DrainTimeout.Duration.String() != "15s" || ro.ReadinessDelay.Duration.String() != "10s" || d.Spec.RetainContainers != 3 {
		t.Errorf("rollout = %+v, retain %d", ro, d.Spec.RetainContainers)
	}
	if strings.Join(d.Spec.Volumes, ",") != "/srv/shop/storage:/rails/storage" || d.Spec.PrimaryRole != "web" {
		t.Errorf("volumes %v, primary %q", d.Spec.Volumes, d.Spec.PrimaryRole)
	}
	envs := map[string]kamalv1.EnvVar{}
	for _, e := range d.Spec.Env {
		envs[e.Name] = e
	}
	if envs["RELEASE"].Value != "spring" || envs["WEB_CONCURRENCY"].Value != "2" {
		t.Errorf("ENV not read: %+v", d.Spec.Env)
	}
	if ref := envs["DATABASE_PASSWORD"].ValueFrom.SecretKeyRef; ref.Name != "shop-secrets" || ref.Key != "SHOP_DB_PASSWORD" {
		t.Errorf("NAME:SECRET_NAME → %+v", ref)
	}

	// Servers: one per host, the jump host of ssh.proxy, proxies only where a proxied role runs.
	if len(o.servers) != 5 {
		t.Fatalf("servers: %v", keys(o.servers))
	}
	w1, w2, j1, db, jump := o.servers["10-0-0-11"], o.servers["10-0-0-12"], o.servers["10-0-0-13"], o.servers["10-0-0-20"], o.servers["jump-bastion-example-com"]
	if w1.Spec.User != "deploy" || w1.Spec.Port != 2222 || w1.Spec.JumpHost.ServerName != jump.Name || w1.Spec.Proxy.HTTPPort != 8080 {
		t.Errorf("web-1 = %+v", w1.Spec)
	}
	if w2.Labels[TagLabelPrefix+"canary"] != "true" || w2.Labels[RoleLabelPrefix+"web"] != "true" {
		t.Errorf("web-2 labels = %v", w2.Labels)
	}
	if *j1.Spec.Proxy.Enabled || *db.Spec.Proxy.Enabled || j1.Labels[RoleLabelPrefix+"jobs"] != "true" {
		t.Errorf("jobs %+v, db %+v", j1, db)
	}
	if jump.Spec.Address != "bastion.example.com" || jump.Spec.User != "ops" || jump.Spec.Port != 0 || jump.Spec.JumpHost != nil || len(jump.Labels) != 0 {
		t.Errorf("jump = %+v", jump)
	}

	acc := o.accessories["shop-db"]
	if acc.Spec.Servers.Names[0] != "10-0-0-20" || strings.Join(acc.Spec.Directories, ",") != "data:/var/lib/postgresql/data,backups:/backups:ro" ||
		len(acc.Spec.Files) != 2 || acc.Spec.Files[0].Target != "/docker-entrypoint-initdb.d/init.sql" || acc.Spec.Files[0].ConfigMapKeyRef.Key != "init.sql" ||
		*acc.Spec.Files[1].Mode != 0o640 || acc.Spec.Files[1].Owner != "999:999" || acc.Spec.Options.ShmSize.String() != "256Mi" {
		t.Errorf("db = %+v", acc.Spec)
	}
	redis := o.accessories["shop-redis"]
	if redis.Spec.Servers.Selector.MatchLabels[RoleLabelPrefix+"jobs"] != "true" || redis.Spec.Image != "redis:latest" ||
		strings.Join(redis.Spec.Cmd, " ") != "redis-server --appendonly yes" {
		t.Errorf("redis = %+v", redis.Spec)
	}

	// Secrets: literal values from the file; substitutions are never run and stay placeholders.
	s := o.secrets["shop-secrets"].StringData
	if s["RAILS_MASTER_KEY"] != "0123456789abcdef" || s["SHOP_DB_PASSWORD"] != Placeholder {
		t.Errorf("shop-secrets = %v", s)
	}
	if !strings.Contains(o.secrets["shop-registry"].StringData[".dockerconfigjson"], `"ghcr.io":{"password":"ghp_literal_token","username":"acme-bot"}`) {
		t.Errorf("registry = %v", o.secrets["shop-registry"].StringData)
	}
	for key, part := range map[string]string{
		"shop/.kamal/secrets:4":        "SHOP_DB_PASSWORD: command substitution $(...) is not run",
		"shop/.kamal/secrets:6":        "FROM_ENV: variable expansion ${...}",
		"env.tags.canary":              "env cannot depend",
		"servers.jobs.stop_timeout":    "not mapped",
		"servers.jobs.options.network": "not mapped",
		"proxy.run.metrics_port":       "not mapped",
		"ssh.forward_agent":            "not mapped",
		"hooks_path":                   "hooks",
		"builder":                      "out of scope",
		"accessories.redis.image":      "redis:latest",
		"aliases.console":              "kubectl kamal exec shop -it --reuse -- bin/rails console",
		"aliases.dbc":                  "kubectl kamal exec accessory/shop-db -it -- psql -U shop",
	} {
		if !warned(r, key, part) {
			t.Errorf("no warning %s: …%s…", key, part)
		}
	}
	y, _ := r.YAML()
	if strings.Contains(string(y), "op read") || strings.Contains(string(y), "op://") {
		t.Error("the command of a secret reached the output")
	}
	if !strings.Contains(string(y), "kubectl create configmap shop-db-files --from-file=init.sql=config/postgres/init.sql --from-file=pg_hba.conf=config/postgres/pg_hba.conf") {
		t.Errorf("no configmap command:\n%s", y)
	}
}

func keys[V any](m map[string]V) []string { return sortedKeys(m) }

func TestDestinationMergesOverBase(t *testing.T) {
	r, err := Import(Input{FS: fixtures(t), ConfigPath: "shop/config/deploy.yml", Destination: "staging", Tag: "v42"})
	if err != nil {
		t.Fatal(err)
	}
	o := split(t, r)
	// Lists are replaced (one staging host for both roles and the db); maps are merged.
	if len(o.servers) != 2 || o.servers["10-1-0-11"] == nil {
		t.Fatalf("servers = %v", keys(o.servers))
	}
	h := o.servers["10-1-0-11"]
	if h.Labels[RoleLabelPrefix+"web"] != "true" || h.Labels[RoleLabelPrefix+"jobs"] != "true" || h.Spec.Proxy.Enabled != nil || h.Spec.Proxy.HTTPPort != 8080 {
		t.Errorf("staging host = %+v", h)
	}
	d := o.dep
	if strings.Join(d.Spec.Proxy.Hosts, ",") != "staging.shop.example.com" || *d.Spec.Proxy.AppPort != 3000 || d.Spec.Rollout.MaxParallel.String() != "1" ||
		d.Spec.Rollout.Wait.Duration.String() != "5s" || strings.Join(d.Spec.Roles["jobs"].Cmd, " ") != "bin/jobs --queue default mailers" {
		t.Errorf("staging deployment = %+v", d.Spec)
	}
	envs := map[string]string{}
	for _, e := range d.Spec.Env {
		envs[e.Name] = e.Value
	}
	if envs["RAILS_ENV"] != "staging" || envs["WEB_CONCURRENCY"] != "2" {
		t.Errorf("env = %v", envs)
	}
	if o.accessories["shop-db"].Spec.Servers.Names[0] != "10-1-0-11" || o.accessories["shop-db"].Spec.Image != "postgres:16" {
		t.Errorf("db = %+v", o.accessories["shop-db"].Spec)
	}
	if _, err := Import(Input{FS: fixtures(t), ConfigPath: "shop/config/deploy.yml", Destination: "production", Tag: "v42"}); err == nil || !strings.Contains(err.Error(), "deploy.production.yml") {
		t.Errorf("missing destination file: %v", err)
	}
}

func minimal(extra string) fstest.MapFS {
	return fstest.MapFS{"deploy.yml": {Data: []byte("service: app\nimage: acme/app\nservers: [1.2.3.4]\n" + extra)}}
}

func TestTagIsRequired(t *testing.T) {
	_, err := Import(Input{FS: minimal(""), ConfigPath: "deploy.yml"})
	if err == nil || !strings.Contains(err.Error(), "has no tag") || !strings.Contains(err.Error(), "--tag") {
		t.Errorf("untagged image: %v", err)
	}
	if _, err := Import(Input{FS: minimal(""), ConfigPath: "deploy.yml", Tag: "latest"}); err == nil || !strings.Contains(err.Error(), "latest") {
		t.Errorf("--tag latest: %v", err)
	}
	fsys := fstest.MapFS{"deploy.yml": {Data: []byte("service: app\nimage: acme/app:1.2\nservers: [1.2.3.4]\nregistry: {server: registry.example.com:5000}\n")}}
	r, err := Import(Input{FS: fsys, ConfigPath: "deploy.yml"})
	if err != nil || r.Objects[len(r.Objects)-1].Object.(*kamalv1.Deployment).Spec.Image != "registry.example.com:5000/acme/app:1.2" {
		t.Errorf("tagged image: %v", err)
	}
	// No credentials: no pull Secret.
	if _, ok := r.Objects[0].Object.(*corev1.Secret); ok {
		t.Errorf("a registry without credentials made a Secret")
	}
}

func TestERB(t *testing.T) {
	fsys := minimal(`env:
  clear:
    A: <%= ENV["A"] %>
    B: <%= ENV.fetch('B') %>
    C: <%= ENV.fetch("C", "fallback") -%>
`)
	r, err := Import(Input{FS: fsys, ConfigPath: "deploy.yml", Tag: "1", Getenv: env("A", "from-a", "B", "from-b")})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range split(t, r).dep.Spec.Env {
		got[e.Name] = e.Value
	}
	if got["A"] != "from-a" || got["B"] != "from-b" || got["C"] != "fallback" {
		t.Errorf("env = %v", got)
	}
	if _, err := Import(Input{FS: fsys, ConfigPath: "deploy.yml", Tag: "1", Getenv: env("A", "x")}); err == nil || !strings.Contains(err.Error(), "deploy.yml:7") || !strings.Contains(err.Error(), "B is not set") {
		t.Errorf("ENV.fetch of an unset variable: %v", err)
	}
	for _, tag := range []string{`<%= %x(aws ecr get-login-password) %>`, `<% if true %>`, `<%= ENV["A"].upcase %>`, `<%= File.read("x") %>`} {
		fsys := minimal("registry:\n  username: AWS\n  # a comment line\n  password: " + tag + "\n")
		_, err := Import(Input{FS: fsys, ConfigPath: "deploy.yml", Tag: "1", Getenv: env("A", "x")})
		if err == nil || !strings.Contains(err.Error(), "deploy.yml:7: ERB tag") || !strings.Contains(err.Error(), "refused") {
			t.Errorf("%s: %v", tag, err)
		}
	}
}

func TestSecretsFile(t *testing.T) {
	var warnings []Warning
	got := parseSecrets("s", strings.Join([]string{
		"# comment",
		"",
		"PLAIN=abc # trailing comment",
		"export EXPORTED=yes",
		`DOUBLE="a \"quoted\" value\nline2"`,
		`SINGLE='literal $(not run) ${NOR_THIS}'`,
		"SUBST=$(op read op://vault/item/field)",
		"BACKTICK=`cat key`",
		"EXPAND=${HOME}/x",
		"BARE=$HOME",
		`ESCAPED="costs \$5"`,
		`PEM="-----BEGIN KEY-----`,
		`abc`,
		`-----END KEY-----"`,
		"not a line",
	}, "\n"), func(k, m string) { warnings = append(warnings, Warning{k, m}) })
	want := map[string]string{
		"PLAIN": "abc", "EXPORTED": "yes", "DOUBLE": "a \"quoted\" value\nline2",
		"SINGLE": "literal $(not run) ${NOR_THIS}", "ESCAPED": "costs $5",
		"PEM": "-----BEGIN KEY-----\nabc\n-----END KEY-----",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for _, k := range []string{"SUBST", "BACKTICK", "EXPAND", "BARE"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s has a value: %q", k, got[k])
		}
	}
	text := ""
	for _, w := range warnings {
		text += w.String() + "\n"
	}
	for _, want := range []string{"s:7: SUBST: command substitution $(...) is not run", "s:8: BACKTICK: command substitution `...`", "s:9: EXPAND: variable expansion ${...}", "s:10: BARE: variable expansion $NAME", "s:15: not a KEY=value line"} {
		if !strings.Contains(text, want) {
			t.Errorf("warnings lack %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "op://") || strings.Contains(text, "abc") {
		t.Errorf("a warning shows a value:\n%s", text)
	}
}

func TestEveryKeyIsMappedOrReported(t *testing.T) {
	fsys := minimal(`unknown_key: 1
x-anchors: {a: 1}
minimum_version: 2.0.0
require_destination: true
error_pages_path: public
proxy:
  host: a.example.com
  bogus: 1
  run: {version: v0.9.0}
accessories:
  cache:
    image: redis:7
    host: 1.2.3.4
    network: custom
    proxy: {host: x}
    files: ["config/redis.conf.erb:/etc/redis.conf"]
    options: {memory: 1g, gpus: all}
`)
	r, err := Import(Input{FS: fsys, ConfigPath: "deploy.yml", Tag: "1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"unknown_key", "x-anchors", "minimum_version", "require_destination", "error_pages_path", "proxy.bogus", "proxy.run.version",
		"accessories.cache.network", "accessories.cache.proxy", "accessories.cache.files[0]", "accessories.cache.options.gpus"} {
		if !warned(r, k, "") {
			t.Errorf("%s not reported: %v", k, r.Warnings)
		}
	}
	acc := split(t, r).accessories["app-cache"]
	if acc.Spec.Files[0].ConfigMapKeyRef.Key != "redis.conf" || acc.Spec.Options.Resources.Memory.String() != "1Gi" {
		t.Errorf("cache = %+v", acc.Spec)
	}
}

func TestServerNames(t *testing.T) {
	fsys := fstest.MapFS{"deploy.yml": {Data: []byte("service: app\nimage: app\nservers:\n  web: [web1.example.com, Web1-Example.com, 2001:db8::1]\n")}}
	r, err := Import(Input{FS: fsys, ConfigPath: "deploy.yml", Tag: "1"})
	if err != nil {
		t.Fatal(err)
	}
	got := keys(split(t, r).servers)
	if strings.Join(got, ",") != "2001-db8-1,web1-example-com,web1-example-com-2" {
		t.Errorf("names = %v", got)
	}
}

func TestAliasCommands(t *testing.T) {
	for line, want := range map[string]string{
		`app exec --interactive --reuse "bash"`:   "kubectl kamal shell app|kubectl kamal exec app -it --reuse -- bash",
		`app exec -i --reuse "bin/rails console"`: "kubectl kamal exec app -it --reuse -- bin/rails console",
		`app exec -r jobs "bin/rake jobs:status"`: "kubectl kamal exec app --role jobs -- bin/rake jobs:status",
		`app exec -p -q "uname -a"`:               "kubectl kamal exec app --role web -- uname -a",
		`app logs -f`:                             "kubectl kamal logs app",
		`accessory logs db`:                       "kubectl kamal logs accessory/app-db",
		`app details`:                             "kubectl kamal status app",
		`rollback abc123`:                         "kubectl kamal rollback app abc123",
		`deploy -d staging`:                       "",
	} {
		if got := strings.Join(aliasCommands("app", "web", line), "|"); got != want {
			t.Errorf("%s → %q, want %q", line, got, want)
		}
	}
}
