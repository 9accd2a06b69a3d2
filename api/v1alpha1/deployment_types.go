package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Deployment reasons, beside the shared ones.
const (
	ReasonRollingOut        = "RollingOut"
	ReasonHealthCheckFailed = "HealthCheckFailed"
	ReasonRolloutHalted     = "RolloutHalted"
	ReasonImagePullFailed   = "ImagePullFailed"
	ReasonWaitingForDeps    = "WaitingForAccessories"
	// ReasonReleaseFailed: the release command of the new revision failed or timed out; the
	// rollout halts before any host switches.
	ReasonReleaseFailed = "ReleaseFailed"
	// ReasonReleasing: the release command of the new revision runs.
	ReasonReleasing = "Releasing"
)

// HTTPS: the CertificateReady condition, its reasons and events. CertificateReady is a
// Deployment's own condition: it never makes Ready False, since HTTP (and an existing
// certificate) keep serving while an order fails.
const (
	ConditionCertificateReady = "CertificateReady"

	ReasonCertificateIssued        = "CertificateIssued"
	ReasonCertificateRenewed       = "CertificateRenewed"
	ReasonCertificateOrderFailed   = "CertificateOrderFailed"
	ReasonCertificateServed        = "CertificateServed"
	ReasonOrdering                 = "Ordering"
	ReasonOrderFailed              = "OrderFailed"
	ReasonSecretNotOwned           = "SecretNotOwned"
	ReasonCertificateSecretInvalid = "CertificateSecretInvalid"
	ReasonProxyTooOld              = "ProxyTooOld"
	ReasonHTTPPortNot80            = "HTTPPortNot80"
	ReasonWildcardNeedsSecret      = "WildcardNeedsSecret"
	ReasonCertificatePushFailed    = "CertificatePushFailed"

	// LabelCertificateOf marks a Secret holding the automatic certificate of the Deployment it
	// names; with the owner reference it is what lets the controller write the Secret.
	LabelCertificateOf = "kamal.operator.dev/certificate-of"
)

// CertificateStatus is the certificate a Deployment serves over HTTPS.
type CertificateStatus struct {
	// Names the certificate is for.
	// +optional
	Names []string `json:"names,omitempty"`
	// NotAfter is when the certificate expires.
	// +optional
	NotAfter *metav1.Time `json:"notAfter,omitempty"`
	// RenewAt is when an automatic certificate is renewed (two thirds of its lifetime).
	// +optional
	RenewAt *metav1.Time `json:"renewAt,omitempty"`
	// SecretName is the Secret of type kubernetes.io/tls holding the certificate.
	// +optional
	SecretName string `json:"secretName,omitempty"`
	// Failures counts consecutive failed orders; retries back off from LastFailure.
	// +optional
	Failures int32 `json:"failures,omitempty"`
	// LastFailure is when the last order failed.
	// +optional
	LastFailure *metav1.Time `json:"lastFailure,omitempty"`
	// NextOrderAt is the earliest time of the next order after a failure (the backoff, or the
	// CA's Retry-After when longer).
	// +optional
	NextOrderAt *metav1.Time `json:"nextOrderAt,omitempty"`
}

// AnnotationRestartedAt, set to any new value (kubectl rollout restart style), restarts every
// container of a Deployment with a rolling deploy of the same version. spec.restartedAt does
// the same as a new generation; the annotation stays for objects and scripts that use it.
const AnnotationRestartedAt = "kamal.operator.dev/restartedAt"

// DeploymentSpec is the app: Kamal's `service`, its `servers` roles and their settings.
// +kubebuilder:validation:XValidation:rule="self.primaryRole in self.roles",message="primaryRole must name one of the roles"
// +kubebuilder:validation:XValidation:rule="!has(self.rollout) || !has(self.rollout.release) || !has(self.rollout.release.role) || size(self.rollout.release.role) == 0 || self.rollout.release.role in self.roles",message="rollout.release.role must name one of the roles"
// +kubebuilder:validation:XValidation:rule="self.roles.all(r, !(has(self.roles[r].proxy) && has(self.roles[r].proxy.ssl) ? self.roles[r].proxy.ssl : (has(self.proxy) && has(self.proxy.ssl) && self.proxy.ssl)) || (has(self.roles[r].proxy) && has(self.roles[r].proxy.hosts)) || (has(self.proxy) && has(self.proxy.hosts)))",message="proxy.ssl needs proxy.hosts: certificates are issued for host names"
type DeploymentSpec struct {
	// Image to run; its tag or digest is the version. Changing it rolls the new version out.
	// A registry reference as Docker reads it: [registry[:port]/]repository[:tag][@sha256:digest]
	// with a lowercase repository, a tag of at most 128 characters and a name of at most 255;
	// a registry is recognised by a '.' or a ':port' in the first component, or as localhost.
	// The tag latest (in any case) is refused.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9._:/@-]+$`
	// +kubebuilder:validation:XValidation:rule="self.lowerAscii().matches('^((localhost|[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?([.][a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)+(:[0-9]+)?|[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?:[0-9]+)/)?[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*)*(:[a-zA-Z0-9_][a-zA-Z0-9_.-]*)?(@sha256:[a-f0-9]{64})?$')",message="image must be a reference [registry[:port]/]repository[:tag][@sha256:digest]: repository components are lowercase letters and digits joined by '.', '_', '__' or '-', and none is empty"
	// +kubebuilder:validation:XValidation:rule="self.matches('^((localhost|[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?([.][a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)+(:[0-9]+)?|[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?:[0-9]+)/)?[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*)*(:[a-zA-Z0-9_][a-zA-Z0-9_.-]*)?(@sha256:[a-f0-9]{64})?$') || !self.lowerAscii().matches('^((localhost|[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?([.][a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)+(:[0-9]+)?|[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?:[0-9]+)/)?[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*)*(:[a-zA-Z0-9_][a-zA-Z0-9_.-]*)?(@sha256:[a-f0-9]{64})?$')",message="image repository must be lowercase: only the registry host and the tag may have capital letters"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[^@]*:[A-Za-z0-9_.-]{129,}(@.*)?$')",message="image tag must be at most 128 characters"
	// +kubebuilder:validation:XValidation:rule="self.matches('^[^@]{0,255}(:[A-Za-z0-9_.-]*)?(@.*)?$')",message="image name (registry and repository, without the tag) must be at most 255 characters"
	// +kubebuilder:validation:XValidation:rule="self.matches(':[A-Za-z0-9_][A-Za-z0-9_.-]*$') || self.contains('@sha256:')",message="image must name a tag or a digest (e.g. app:2f3c9a1): the tag is the version"
	// +kubebuilder:validation:XValidation:rule="!self.lowerAscii().endsWith(':latest')",message="image tag latest names no version; use a tag per build (e.g. the git SHA) or a digest"
	Image string `json:"image"`

	// ImagePullSecrets are Secrets of type kubernetes.io/dockerconfigjson whose credentials are
	// sent with each pull and never stored on the host.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:XValidation:rule="has(self.name) && size(self.name) > 0",message="imagePullSecrets[].name must not be empty"
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// Roles of the app, by name (e.g. web, jobs). Each runs the image on the Servers it selects.
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(r, r.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(r) <= 63)",message="role names must be DNS labels: lowercase letters, digits and '-', at most 63 characters"
	Roles map[string]Role `json:"roles"`

	// PrimaryRole is the role that gets the proxy by default and boots first.
	// +optional
	// +kubebuilder:default=web
	PrimaryRole string `json:"primaryRole,omitempty"`

	// Env of every role's containers.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=256
	Env []EnvVar `json:"env,omitempty"`

	// EnvFrom imports every key of Secrets or ConfigMaps as env.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	EnvFrom []EnvFromSource `json:"envFrom,omitempty"`

	// Labels added to every container (in addition to the controller's own).
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('kamal.operator.dev/'))",message="labels under kamal.operator.dev/ are reserved for the controller"
	Labels map[string]string `json:"labels,omitempty"`

	// Options are Docker settings of every role's containers.
	// +optional
	Options *ContainerOptions `json:"options,omitempty"`

	// Logging of every role's containers (default json-file with max-size 10m).
	// +optional
	Logging *Logging `json:"logging,omitempty"`

	// Volumes mounted into every role's containers, as Docker's "source:target[:options]":
	// an absolute host path or a named volume, then an absolute container path.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Pattern=`^(/[^:]*|[A-Za-z0-9][A-Za-z0-9_.-]*):/[^:]*(:[a-zA-Z,]+)?$`
	Volumes []string `json:"volumes,omitempty"`

	// Proxy routes HTTP to the role(s) that use the proxy (by default the primary role).
	// Unset fields take the documented defaults (appPort 80, healthcheck /up every 1s with a
	// 5s timeout, responseTimeout 30s).
	// +optional
	Proxy *Proxy `json:"proxy,omitempty"`

	// Rollout is how a new version replaces the running one.
	// +optional
	// +kubebuilder:default={}
	Rollout Rollout `json:"rollout,omitempty"`

	// RetainContainers is how many stopped versions (and their images) are kept per role and
	// server for rollback.
	// +optional
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	RetainContainers int32 `json:"retainContainers,omitempty"`

	// AssetPath is a folder of the image whose files are kept available across versions, so a
	// client holding an old page still gets its assets during a deploy.
	// +optional
	// +kubebuilder:validation:Pattern=`^/[^:]*$`
	AssetPath string `json:"assetPath,omitempty"`

	// Suspend stops reconciling: nothing on the hosts is changed while it is true.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// RestartedAt, set to a new time, restarts every container of every role with a rolling
	// deploy of the same version (what `kubectl kamal restart` sets, like kubectl rollout
	// restart's annotation). Unlike the restartedAt annotation, a change is a new generation,
	// so observedGeneration and kstatus report the restart until it has completed. Unset, it
	// changes nothing.
	// +optional
	RestartedAt *metav1.Time `json:"restartedAt,omitempty"`

	// DependsOn are Accessories that must be Ready before any role boots.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:XValidation:rule="has(self.name) && size(self.name) > 0",message="dependsOn[].name must not be empty"
	DependsOn []corev1.LocalObjectReference `json:"dependsOn,omitempty"`
}

// Role is one kind of container of the app (Kamal's `servers.<role>`).
// Its env is added to the Deployment's (a role entry wins on the same name); its options and
// logging, when set, replace the Deployment's; its proxy fields override the Deployment's field
// by field.
type Role struct {
	// Servers this role runs on.
	Servers ServerSelector `json:"servers"`

	// Cmd replaces the image's command.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	Cmd []string `json:"cmd,omitempty"`

	// Env of this role, added to the Deployment's.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=256
	Env []EnvVar `json:"env,omitempty"`

	// EnvFrom of this role, added to the Deployment's.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	EnvFrom []EnvFromSource `json:"envFrom,omitempty"`

	// Labels of this role's containers.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('kamal.operator.dev/'))",message="labels under kamal.operator.dev/ are reserved for the controller"
	Labels map[string]string `json:"labels,omitempty"`

	// Options override the Deployment's Docker settings for this role.
	// +optional
	Options *ContainerOptions `json:"options,omitempty"`

	// Logging overrides the Deployment's logging for this role.
	// +optional
	Logging *Logging `json:"logging,omitempty"`

	// Proxy overrides the Deployment's proxy for this role; proxy.enabled turns it on or off
	// (on by default for the primary role only).
	// +optional
	Proxy *Proxy `json:"proxy,omitempty"`

	// AssetPath overrides the Deployment's assetPath.
	// +optional
	// +kubebuilder:validation:Pattern=`^/[^:]*$`
	AssetPath string `json:"assetPath,omitempty"`
}

// Proxy is the routing of a role through kamal-proxy on each of its servers.
// +kubebuilder:validation:XValidation:rule="!has(self.sslCertificateSecretRef) || (has(self.ssl) && self.ssl)",message="sslCertificateSecretRef needs ssl: true"
// +kubebuilder:validation:XValidation:rule="!has(self.stripPathPrefix) || has(self.pathPrefixes)",message="stripPathPrefix needs pathPrefixes"
// +kubebuilder:validation:XValidation:rule="!(has(self.ssl) && self.ssl && !has(self.sslCertificateSecretRef) && has(self.hosts) && self.hosts.exists(h, h.startsWith('*.')))",message="wildcard hosts with ssl need sslCertificateSecretRef: automatic certificates (HTTP-01) cannot cover wildcards"
type Proxy struct {
	// Enabled routes this role through the proxy.
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// Hosts are the host names routed to the role; none means every request the proxy gets for
	// a host no route names (where the Server's proxy.catchAllFrom admits the namespace). A
	// leading "*." matches one subdomain level. A host name (and path) claimed by an earlier
	// Deployment on a shared Server is not routed (HostConflict).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Hosts []string `json:"hosts,omitempty"`

	// PathPrefixes limit the route to these URL paths: each starts with '/', has at most 1024
	// characters, no '*', '?' or '#', no whitespace or control characters, no '{' or '}' (Caddy
	// placeholders), and '%' only as an escape of two hex digits (e.g. %2F).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=1024
	// +kubebuilder:validation:items:Pattern=`^/[^*?#]*$`
	// +kubebuilder:validation:items:XValidation:rule="!self.matches('[\\\\p{Cc}\\\\p{Cf}\\\\p{Z}]')",message="path prefix must not contain whitespace or control characters"
	// +kubebuilder:validation:items:XValidation:rule="!self.matches('[{}]')",message="path prefix must not contain '{' or '}': the proxy would read them as placeholders"
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^([^%]|%[0-9A-Fa-f]{2})*$')",message="path prefix has an invalid escape: '%' must be followed by two hex digits (e.g. %2F)"
	PathPrefixes []string `json:"pathPrefixes,omitempty"`

	// StripPathPrefix removes the matched prefix before the request reaches the app
	// (default true).
	// +optional
	StripPathPrefix *bool `json:"stripPathPrefix,omitempty"`

	// AppPort is the port the app listens on in its container (default 80).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	AppPort *int32 `json:"appPort,omitempty"`

	// SSL serves the hosts over HTTPS with a certificate the controller obtains over ACME
	// HTTP-01 (or sslCertificateSecretRef's), pushed to every host's proxy.
	// +optional
	SSL *bool `json:"ssl,omitempty"`

	// SSLCertificateSecretRef names a Secret of type kubernetes.io/tls to serve instead of an
	// automatic certificate (e.g. cert-manager's, for wildcards); changes are pushed at once.
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0",message="sslCertificateSecretRef.name must not be empty"
	SSLCertificateSecretRef *corev1.LocalObjectReference `json:"sslCertificateSecretRef,omitempty"`

	// SSLRedirect sends HTTP requests to HTTPS when ssl is on (default true).
	// +optional
	SSLRedirect *bool `json:"sslRedirect,omitempty"`

	// ForwardHeaders passes the client's X-Forwarded-* headers on instead of replacing them
	// (default: true without ssl, false with ssl, as in Kamal).
	// +optional
	ForwardHeaders *bool `json:"forwardHeaders,omitempty"`

	// ResponseTimeout is how long the app may take to answer (default 30s), at most 1h.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="responseTimeout must be positive"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('1h')",message="responseTimeout must be at most 1h"
	ResponseTimeout *metav1.Duration `json:"responseTimeout,omitempty"`

	// Buffering of requests and responses in the proxy.
	// +optional
	Buffering *ProxyBuffering `json:"buffering,omitempty"`

	// Healthcheck the proxy and the rollout use to decide that a new container is ready.
	// +optional
	Healthcheck *ProxyHealthcheck `json:"healthcheck,omitempty"`

	// Logging of request and response headers in the proxy's access log.
	// +optional
	Logging *ProxyLogging `json:"logging,omitempty"`
}

// ProxyBuffering bounds request and response buffering.
type ProxyBuffering struct {
	// Requests are buffered before they reach the app.
	// +optional
	Requests *bool `json:"requests,omitempty"`
	// Responses are buffered before they reach the client.
	// +optional
	Responses *bool `json:"responses,omitempty"`
	// MaxRequestBody refuses larger requests (0: no limit).
	// +optional
	MaxRequestBody *resource.Quantity `json:"maxRequestBody,omitempty"`
	// MaxResponseBody bounds buffered responses (0: no limit).
	// +optional
	MaxResponseBody *resource.Quantity `json:"maxResponseBody,omitempty"`
	// Memory is how much of a buffered body the proxy holds in memory; the rest streams
	// (default 1Mi).
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`
}

// ProxyHealthcheck is an HTTP check of a container through the kamal network.
type ProxyHealthcheck struct {
	// Path requested; any 2xx answer is healthy (default /up). It starts with '/', has at most
	// 1024 characters, no whitespace or control characters, no '{' or '}', and '%' only as an
	// escape of two hex digits.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	// +kubebuilder:validation:XValidation:rule="!self.matches('[\\\\p{Cc}\\\\p{Cf}\\\\p{Z}]')",message="healthcheck path must not contain whitespace or control characters"
	// +kubebuilder:validation:XValidation:rule="!self.matches('[{}]')",message="healthcheck path must not contain '{' or '}': the proxy would read them as placeholders"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([^%]|%[0-9A-Fa-f]{2})*$')",message="healthcheck path has an invalid escape: '%' must be followed by two hex digits (e.g. %2F)"
	Path string `json:"path,omitempty"`
	// Interval between checks (default 1s), from 100ms to 1m.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('100ms')",message="healthcheck interval must be at least 100ms"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('1m')",message="healthcheck interval must be at most 1m"
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Timeout of one check (default 5s), from 100ms to 1m.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('100ms')",message="healthcheck timeout must be at least 100ms"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('1m')",message="healthcheck timeout must be at most 1m"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// ProxyLogging names headers to record in the proxy's access log.
type ProxyLogging struct {
	// RequestHeaders to log.
	// +optional
	// +listType=set
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9-]+$`
	RequestHeaders []string `json:"requestHeaders,omitempty"`
	// ResponseHeaders to log.
	// +optional
	// +listType=set
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9-]+$`
	ResponseHeaders []string `json:"responseHeaders,omitempty"`
}

// Rollout is how a new version replaces the old one (Kamal's `boot` and timeouts).
type Rollout struct {
	// MaxParallel is how many servers deploy at once: a number or a percentage of the role's
	// servers (Kamal's boot.limit).
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 1 : self.matches('^([1-9][0-9]?|100)%$')",message="maxParallel must be a positive number or a percentage from 1% to 100%"
	MaxParallel *intstr.IntOrString `json:"maxParallel,omitempty"`

	// Wait between batches (Kamal's boot.wait), at most 1h.
	// +optional
	// +kubebuilder:default="0s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="wait must not be negative"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('1h')",message="wait must be at most 1h"
	Wait *metav1.Duration `json:"wait,omitempty"`

	// DeployTimeout bounds how long a new container may take to become healthy, at most 1h.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="deployTimeout must be positive"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('1h')",message="deployTimeout must be at most 1h"
	DeployTimeout *metav1.Duration `json:"deployTimeout,omitempty"`

	// DrainTimeout is how long in-flight requests to the old container may finish after the
	// switch, at most 1h.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="drainTimeout must not be negative"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('1h')",message="drainTimeout must be at most 1h"
	DrainTimeout *metav1.Duration `json:"drainTimeout,omitempty"`

	// ReadinessDelay is how long a role without the proxy and without a container health check
	// must keep running before it counts as ready, at most 1h.
	// +optional
	// +kubebuilder:default="7s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="readinessDelay must not be negative"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('1h')",message="readinessDelay must be at most 1h"
	ReadinessDelay *metav1.Duration `json:"readinessDelay,omitempty"`

	// StopTimeout is how long a container may take to stop before it is killed, at most 10m.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="stopTimeout must not be negative"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('10m')",message="stopTimeout must be at most 10m"
	StopTimeout *metav1.Duration `json:"stopTimeout,omitempty"`

	// ParallelRoles boots the other roles together with the primary role instead of after it.
	// +optional
	ParallelRoles bool `json:"parallelRoles,omitempty"`

	// Release runs a command in one container of each new revision before any host switches
	// to it (database migrations; Heroku's release phase). The rollout waits for it and halts
	// when it fails. It runs once per revision.
	// +optional
	Release *ReleaseCommand `json:"release,omitempty"`
}

// ReleaseCommand is the command run once per revision before the switch.
type ReleaseCommand struct {
	// Cmd is the command, run in the image with the role's env, volumes and options.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Cmd []string `json:"cmd"`

	// Role whose env, volumes and options the release container gets, and on one of whose
	// Ready servers it runs; the primary role when empty.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Role string `json:"role,omitempty"`

	// Timeout bounds the release; past it the container is killed and the release fails.
	// +optional
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="release timeout must be positive"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('24h')",message="release timeout must be at most 24h"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// ReleasePhase is where a release command is.
// +kubebuilder:validation:Enum=Running;Succeeded;Failed
type ReleasePhase string

// Release phases.
const (
	ReleaseRunning   ReleasePhase = "Running"
	ReleaseSucceeded ReleasePhase = "Succeeded"
	ReleaseFailed    ReleasePhase = "Failed"
)

// ReleaseStatus is the release command of the latest revision that needed one.
type ReleaseStatus struct {
	// Revision the release is for (the rollout revision and the release command).
	Revision string `json:"revision"`
	// Image it ran.
	Image string `json:"image"`
	// Server it ran on.
	// +optional
	Server string `json:"server,omitempty"`
	// Container is its name on the server; it is kept, stopped, until the next release starts.
	// +optional
	Container string `json:"container,omitempty"`
	// Phase of the release.
	Phase ReleasePhase `json:"phase"`
	// ExitCode of the command once it ended.
	// +optional
	ExitCode *int32 `json:"exitCode,omitempty"`
	// StartedAt is when the container started.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// FinishedAt is when it ended.
	// +optional
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
	// Message says why it failed, with the last lines of its output (Secret values redacted).
	// +optional
	Message string `json:"message,omitempty"`
}

// TargetState is the state of one role on one server.
// +kubebuilder:validation:Enum=Pending;Pulling;Starting;HealthChecking;Running;Failed;Unreachable
type TargetState string

// Target states.
const (
	TargetPending        TargetState = "Pending"
	TargetPulling        TargetState = "Pulling"
	TargetStarting       TargetState = "Starting"
	TargetHealthChecking TargetState = "HealthChecking"
	TargetRunning        TargetState = "Running"
	TargetFailed         TargetState = "Failed"
	TargetUnreachable    TargetState = "Unreachable"
)

// TargetStatus is one role on one server.
type TargetStatus struct {
	// Server name; namespace/name for a Server of another namespace.
	Server string `json:"server"`
	// Role name.
	Role string `json:"role"`
	// Version serving on this server.
	// +optional
	Version string `json:"version,omitempty"`
	// Container name of that version.
	// +optional
	Container string `json:"container,omitempty"`
	// State of the role on this server.
	State TargetState `json:"state"`
	// Message says what is wrong or under way.
	// +optional
	Message string `json:"message,omitempty"`
}

// TargetCount counts the targets of one role serving one version in one state.
type TargetCount struct {
	// Role name.
	Role string `json:"role"`
	// Version serving on these targets; empty where none runs.
	// +optional
	Version string `json:"version,omitempty"`
	// State of these targets.
	State TargetState `json:"state"`
	// Count of targets.
	Count int32 `json:"count"`
}

// DeployedImage is one entry of the deploy history.
type DeployedImage struct {
	// Image that was rolled out everywhere.
	Image string `json:"image"`
	// Version of that image.
	Version string `json:"version"`
	// DeployedAt is when the rollout completed.
	DeployedAt metav1.Time `json:"deployedAt"`
}

// DeploymentStatus is what runs on the hosts.
type DeploymentStatus struct {
	CommonStatus `json:",inline"`

	// Image serving on every target, once a rollout has completed.
	// +optional
	Image string `json:"image,omitempty"`

	// Version serving on every target.
	// +optional
	Version string `json:"version,omitempty"`

	// ServersReady is "ready/total" over role targets, for the printer column.
	// +optional
	ServersReady string `json:"serversReady,omitempty"`

	// ReadyTargets counts role targets serving spec.image.
	// +optional
	ReadyTargets int32 `json:"readyTargets,omitempty"`

	// TotalTargets counts role targets (a role on a server).
	// +optional
	TotalTargets int32 `json:"totalTargets,omitempty"`

	// Targets is each role on each server while there are at most 100 of them; beyond that,
	// only the targets that are not Running (at most 100), and targetsNotListed counts the
	// others. Summary counts all of them.
	// +optional
	// +listType=map
	// +listMapKey=server
	// +listMapKey=role
	Targets []TargetStatus `json:"targets,omitempty"`

	// TargetsNotListed counts the targets left out of targets (0 when it lists them all).
	// +optional
	TargetsNotListed int32 `json:"targetsNotListed,omitempty"`

	// Summary counts every target by role, version and state, primary role first.
	// +optional
	// +listType=atomic
	Summary []TargetCount `json:"summary,omitempty"`

	// GuestNamespaces are the namespaces of Servers of other namespaces the Deployment runs on,
	// or ran on and may still have containers on (a Server there was unreachable when it
	// left): their Servers are looked at for containers to remove, which targets alone may
	// not name once it is bounded.
	// +optional
	// +listType=set
	GuestNamespaces []string `json:"guestNamespaces,omitempty"`

	// FailedRevision identifies the spec (and resolved env) whose rollout failed its health
	// check; it is not retried until the spec (spec.restartedAt included), a referenced Secret
	// or ConfigMap, or the restartedAt annotation changes.
	// +optional
	FailedRevision string `json:"failedRevision,omitempty"`

	// LastBatchAt is when the last batch of a rollout finished on its hosts; rollout.wait
	// counts from it, also across a controller restart.
	// +optional
	LastBatchAt *metav1.Time `json:"lastBatchAt,omitempty"`

	// History of images rolled out, newest first; retained ones can be rolled back to by
	// setting spec.image.
	// +optional
	// +kubebuilder:validation:MaxItems=50
	History []DeployedImage `json:"history,omitempty"`

	// Certificate is the HTTPS certificate served for the proxied roles' hosts (ssl: true).
	// +optional
	Certificate *CertificateStatus `json:"certificate,omitempty"`

	// Release is the release command of the latest revision that needed one.
	// +optional
	Release *ReleaseStatus `json:"release,omitempty"`

	// ReleasedRevisions are the revisions whose release command succeeded, newest first (at
	// most 20): rolling back to one of them runs no release again.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	ReleasedRevisions []string `json:"releasedRevisions,omitempty"`
}

// Deployment is an app deployed to Servers with zero downtime: Kamal's `service`.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=kdeploy,categories=kamal
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.image`
// +kubebuilder:printcolumn:name="Servers",type=string,JSONPath=`.status.serversReady`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 53",message="Deployment names must be DNS labels of at most 53 characters: they name containers and proxy routes"
type Deployment struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec DeploymentSpec `json:"spec"`
	// +kubebuilder:default={observedGeneration:-1}
	Status DeploymentStatus `json:"status,omitempty"`
}

// DeploymentList is a list of Deployments.
// +kubebuilder:object:root=true
type DeploymentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Deployment `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Deployment{}, &DeploymentList{})
}
