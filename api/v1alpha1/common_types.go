package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types shared by every kind. They follow kstatus: Ready says whether the object has
// converged; Reconciling is present (True) only while work is under way; Stalled is present
// (True) only when retrying will not help until the spec or a referenced object changes.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"

	// ConditionInert (type FieldsNotActedOn) reports fields the spec sets that validate and are
	// stored but that the controller does not act on yet (README, "Accepted but not acted on
	// yet"); its message names them.
	ConditionInert = "FieldsNotActedOn"
)

// Condition reasons shared by every kind.
const (
	ReasonProgressing       = "Progressing"
	ReasonReconciled        = "Reconciled"
	ReasonSecretNotFound    = "SecretNotFound"
	ReasonConfigMapNotFound = "ConfigMapNotFound"
	ReasonInvalidSecret     = "InvalidSecret"
	ReasonInvalidSpec       = "InvalidSpec"
	ReasonServerNotFound    = "ServerNotFound"
	ReasonNoServers         = "NoServers"
	ReasonSuspended         = "Suspended"
	ReasonAccessoryNotFound = "AccessoryNotFound"
	ReasonPending           = "Pending"
	// ReasonNamespaceNotAllowed: a selected Server of another namespace does not allow the
	// object's namespace (its spec.allowedNamespaces).
	ReasonNamespaceNotAllowed = "NamespaceNotAllowed"
	// ReasonGuestPolicy: the object places on a Server of another namespace and asks for
	// something the controller's guest policy refuses there.
	ReasonGuestPolicy = "GuestPolicy"
	// ReasonDuplicateServer: on a Server, another (older) Server manages the same host; on a
	// Deployment or Accessory, a selected Server is such a duplicate.
	ReasonDuplicateServer = "DuplicateServer"
	// ReasonHostConflict: another Deployment, created earlier, routes a host name (and path)
	// this one claims on a proxy both use.
	ReasonHostConflict = "HostConflict"
	// ReasonCatchAllNotAllowed: a role routed without host names is placed on a Server whose
	// proxy.catchAllFrom does not admit the Deployment's namespace.
	ReasonCatchAllNotAllowed = "CatchAllNotAllowed"
	// ReasonServerDeleting: a Server is being deleted. On the Server, it waits for what runs
	// on its host to be removed; on a Deployment or Accessory, that Server counts no more and
	// what ran there is removed.
	ReasonServerDeleting = "ServerDeleting"
	// ReasonCleanupFailed: an object being deleted could not remove what it left on a host;
	// the message says what and why, and its finalizer stays.
	ReasonCleanupFailed = "CleanupFailed"
	// ReasonNotActedOn is the reason of the FieldsNotActedOn condition.
	ReasonNotActedOn = "NotActedOn"
	// ReasonNetworkPoolsExhausted (an event) is a namespace network Docker could not create:
	// its address pools are used up.
	ReasonNetworkPoolsExhausted = "NetworkPoolsExhausted"
)

// Labels the controller puts on what it creates on hosts. Users may not set labels under this
// prefix themselves.
const (
	LabelPrefix     = "kamal.operator.dev/"
	LabelNamespace  = LabelPrefix + "namespace"
	LabelDeployment = LabelPrefix + "deployment"
	LabelAccessory  = LabelPrefix + "accessory"
	LabelRole       = LabelPrefix + "role"
	LabelVersion    = LabelPrefix + "version"
	LabelSpecHash   = LabelPrefix + "spec-hash"
	LabelManagedBy  = "app.kubernetes.io/managed-by"
	ManagerName     = "kamal-operator"

	// LabelOneOff marks a one-off container that kubectl-kamal started (its value is the kind,
	// e.g. "exec"). It carries no deployment or accessory label, so the controller never takes
	// it for a version of anything; the Server controller removes it once it has outlived its
	// grace period (left behind by a killed plugin).
	LabelOneOff = LabelPrefix + "one-off"
	// LabelOneOffFor names what a one-off container was started for: "Deployment/<name>" or
	// "Accessory/<name>" of its namespace.
	LabelOneOffFor = LabelPrefix + "one-off-for"
)

// ServerSelector picks Servers: by name or by label, exactly one, in the object's own namespace
// or in the one named by namespace. An empty selector is refused: it would match every Server of
// the namespace.
// +kubebuilder:validation:XValidation:rule="has(self.names) != has(self.selector)",message="set exactly one of servers.names or servers.selector"
// +kubebuilder:validation:XValidation:rule="!has(self.selector) || (has(self.selector.matchLabels) && size(self.selector.matchLabels) > 0) || (has(self.selector.matchExpressions) && size(self.selector.matchExpressions) > 0)",message="servers.selector is empty and would match every Server of the namespace: use servers.names, or select by labels with matchLabels or matchExpressions"
type ServerSelector struct {
	// Namespace of the Servers, when they are not in the object's own namespace (empty: the
	// object's own). Every Server picked there must allow the object's namespace in its
	// spec.allowedNamespaces, or the object is Stalled (NamespaceNotAllowed) and nothing is
	// placed; the controller's guest policy then applies to the object.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`

	// Names of Servers in that namespace.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Names []string `json:"names,omitempty"`

	// Selector matches Servers of that namespace by their labels; it needs at least one
	// matchLabels entry or matchExpressions term.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// EnvVar is an environment variable of a container: a literal value or one read from a Secret
// or ConfigMap key. Values from Secrets reach the container through the Docker Engine API only:
// never through a command line, a file the controller writes, logs, events or status (Docker
// itself keeps a container's env in its state on the host, readable by root).
// +kubebuilder:validation:XValidation:rule="!(has(self.value) && has(self.valueFrom))",message="set value or valueFrom, not both"
type EnvVar struct {
	// Name of the variable.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z][-._a-zA-Z0-9]*$`
	Name string `json:"name"`

	// Value is a literal value.
	// +optional
	Value string `json:"value,omitempty"`

	// ValueFrom reads the value from a Secret or ConfigMap key.
	// +optional
	ValueFrom *EnvVarSource `json:"valueFrom,omitempty"`
}

// EnvVarSource names one key of a Secret or a ConfigMap in the same namespace.
// +kubebuilder:validation:XValidation:rule="has(self.secretKeyRef) != has(self.configMapKeyRef)",message="set exactly one of secretKeyRef or configMapKeyRef"
type EnvVarSource struct {
	// SecretKeyRef selects a key of a Secret; name and key must not be empty.
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0",message="secretKeyRef.name must not be empty"
	// +kubebuilder:validation:XValidation:rule="size(self.key) > 0",message="secretKeyRef.key must not be empty"
	SecretKeyRef *corev1.SecretKeySelector `json:"secretKeyRef,omitempty"`

	// ConfigMapKeyRef selects a key of a ConfigMap; name and key must not be empty.
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0",message="configMapKeyRef.name must not be empty"
	// +kubebuilder:validation:XValidation:rule="size(self.key) > 0",message="configMapKeyRef.key must not be empty"
	ConfigMapKeyRef *corev1.ConfigMapKeySelector `json:"configMapKeyRef,omitempty"`
}

// EnvFromSource imports every key of a Secret or ConfigMap as environment variables.
// +kubebuilder:validation:XValidation:rule="has(self.secretRef) != has(self.configMapRef)",message="set exactly one of secretRef or configMapRef"
type EnvFromSource struct {
	// Prefix is prepended to every key.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z][-._a-zA-Z0-9]*$`
	Prefix string `json:"prefix,omitempty"`

	// SecretRef names a Secret; the name must not be empty.
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0",message="secretRef.name must not be empty"
	SecretRef *corev1.SecretEnvSource `json:"secretRef,omitempty"`

	// ConfigMapRef names a ConfigMap; the name must not be empty.
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0",message="configMapRef.name must not be empty"
	ConfigMapRef *corev1.ConfigMapEnvSource `json:"configMapRef,omitempty"`
}

// RestartPolicy is Docker's restart policy for a container.
// +kubebuilder:validation:Enum=no;always;unless-stopped;on-failure
type RestartPolicy string

// Docker restart policies.
const (
	RestartNo            RestartPolicy = "no"
	RestartAlways        RestartPolicy = "always"
	RestartUnlessStopped RestartPolicy = "unless-stopped"
	RestartOnFailure     RestartPolicy = "on-failure"
)

// ContainerOptions are the typed Docker settings of a container: what Kamal passes as
// `options:` (`docker run --key value`). Only settings the Docker Engine API knows are accepted,
// so nothing here is ever pasted into a command line.
// +kubebuilder:validation:XValidation:rule="!has(self.restartMaxRetries) || self.restartPolicy == 'on-failure'",message="restartMaxRetries needs restartPolicy on-failure"
type ContainerOptions struct {
	// Resources limits the container's CPU, memory and processes.
	// +optional
	Resources *Resources `json:"resources,omitempty"`

	// RestartPolicy is Docker's restart policy.
	// +optional
	// +kubebuilder:default=unless-stopped
	RestartPolicy RestartPolicy `json:"restartPolicy,omitempty"`

	// RestartMaxRetries bounds restarts with restartPolicy on-failure.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	RestartMaxRetries *int32 `json:"restartMaxRetries,omitempty"`

	// ExtraHosts are added to the container's /etc/hosts, as "name:address".
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?:(host-gateway|[0-9a-fA-F:.]+)$`
	ExtraHosts []string `json:"extraHosts,omitempty"`

	// Ulimits sets resource limits inside the container.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	Ulimits []Ulimit `json:"ulimits,omitempty"`

	// User runs the container's process as this user, "name", "uid" or "uid:gid".
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[a-z_][-a-z0-9_]*(:[a-z_][-a-z0-9_]*)?$|^[0-9]+(:[0-9]+)?$`
	User string `json:"user,omitempty"`

	// WorkingDir is the working directory inside the container.
	// +optional
	// +kubebuilder:validation:Pattern=`^/`
	WorkingDir string `json:"workingDir,omitempty"`

	// ShmSize is the size of /dev/shm.
	// +optional
	ShmSize *resource.Quantity `json:"shmSize,omitempty"`

	// CapAdd adds Linux capabilities.
	// +optional
	// +listType=set
	// +kubebuilder:validation:items:Pattern=`^[A-Z_]+$`
	CapAdd []string `json:"capAdd,omitempty"`

	// CapDrop drops Linux capabilities.
	// +optional
	// +listType=set
	// +kubebuilder:validation:items:Pattern=`^[A-Z_]+$`
	CapDrop []string `json:"capDrop,omitempty"`

	// Privileged gives the container every capability and device of the host.
	// +optional
	Privileged bool `json:"privileged,omitempty"`

	// ReadOnlyRootFilesystem mounts the image read-only.
	// +optional
	ReadOnlyRootFilesystem bool `json:"readOnlyRootFilesystem,omitempty"`

	// Init runs an init process as PID 1 that reaps zombies and forwards signals.
	// +optional
	Init bool `json:"init,omitempty"`

	// StopSignal is the signal that asks the container to stop (default: the image's, else SIGTERM).
	// +optional
	// +kubebuilder:validation:Pattern=`^(SIG[A-Z0-9]+|[0-9]+)$`
	StopSignal string `json:"stopSignal,omitempty"`

	// Tmpfs mounts in-memory file systems at these container paths.
	// +optional
	// +listType=set
	// +kubebuilder:validation:items:Pattern=`^/`
	Tmpfs []string `json:"tmpfs,omitempty"`

	// Devices maps host devices into the container, as "/dev/host[:/dev/container[:rwm]]".
	// +optional
	// +listType=set
	// +kubebuilder:validation:items:Pattern=`^/dev/[^:]+(:/dev/[^:]+)?(:[rwm]{1,3})?$`
	Devices []string `json:"devices,omitempty"`

	// DNS servers of the container.
	// +optional
	// +listType=set
	// +kubebuilder:validation:items:Pattern=`^[0-9a-fA-F:.]+$`
	DNS []string `json:"dns,omitempty"`

	// Sysctls are namespaced kernel parameters of the container.
	// +optional
	Sysctls map[string]string `json:"sysctls,omitempty"`

	// Healthcheck replaces the image's HEALTHCHECK. Roles without the proxy wait for it before a
	// new version counts as ready.
	// +optional
	Healthcheck *ContainerHealthcheck `json:"healthcheck,omitempty"`
}

// Resources are the container's resource limits.
type Resources struct {
	// CPUs is the CPU quota, e.g. "1.5" or "500m".
	// +optional
	CPUs *resource.Quantity `json:"cpus,omitempty"`

	// Memory is the memory limit, e.g. "512Mi".
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`

	// MemoryReservation is a soft memory limit.
	// +optional
	MemoryReservation *resource.Quantity `json:"memoryReservation,omitempty"`

	// PidsLimit bounds the number of processes.
	// +optional
	// +kubebuilder:validation:Minimum=1
	PidsLimit *int64 `json:"pidsLimit,omitempty"`
}

// Ulimit is one resource limit, as `--ulimit name=soft:hard`.
// +kubebuilder:validation:XValidation:rule="self.soft <= self.hard",message="ulimit soft must not exceed hard"
type Ulimit struct {
	// Name of the limit, e.g. nofile.
	// +kubebuilder:validation:Enum=core;cpu;data;fsize;locks;memlock;msgqueue;nice;nofile;nproc;rss;rtprio;rttime;sigpending;stack
	Name string `json:"name"`
	// Soft limit.
	// +kubebuilder:validation:Minimum=-1
	Soft int64 `json:"soft"`
	// Hard limit.
	// +kubebuilder:validation:Minimum=-1
	Hard int64 `json:"hard"`
}

// ContainerHealthcheck is a Docker health check run inside the container.
type ContainerHealthcheck struct {
	// Command run inside the container, in exec form; exit 0 means healthy.
	// +kubebuilder:validation:MinItems=1
	Command []string `json:"command"`

	// Interval between checks.
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="interval must be positive"
	Interval *metav1.Duration `json:"interval,omitempty"`

	// Timeout of one check.
	// +optional
	// +kubebuilder:default="5s"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="timeout must be positive"
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// Retries before the container is unhealthy.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Retries int32 `json:"retries,omitempty"`

	// StartPeriod during which failures do not count.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="startPeriod must not be negative"
	StartPeriod *metav1.Duration `json:"startPeriod,omitempty"`
}

// Logging is the container's Docker log driver.
type Logging struct {
	// Driver is the Docker log driver.
	// +optional
	// +kubebuilder:default=json-file
	// +kubebuilder:validation:Pattern=`^[a-z0-9][-a-z0-9_.]*$`
	Driver string `json:"driver,omitempty"`

	// Options of the log driver; Kamal's default is max-size=10m.
	// +optional
	Options map[string]string `json:"options,omitempty"`
}

// ServerStatusCondition helpers and the observed generation are shared by every status.
type CommonStatus struct {
	// ObservedGeneration is the generation the status describes; -1 until first observed, so a
	// new object reads as in progress.
	// +optional
	// +kubebuilder:default=-1
	ObservedGeneration int64 `json:"observedGeneration"`

	// Conditions: Ready, Reconciling and Stalled (kstatus), plus kind-specific ones.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}
