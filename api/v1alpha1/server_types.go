package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Server condition types, beside Ready, Reconciling and Stalled.
const (
	// ConditionReachable: an SSH session with a verified host key is open.
	ConditionReachable = "Reachable"
	// ConditionDockerReady: the Docker engine answers through that session.
	ConditionDockerReady = "DockerReady"
	// ConditionProxyReady: the kamal-proxy container runs with the Server's settings.
	ConditionProxyReady = "ProxyReady"
	// ConditionProxyUpgrade: whether this host's proxy is being replaced (True), or why a
	// replacement its settings call for has not happened (False: waiting its turn, held by a
	// halted rollout, failed here, or up to date).
	ConditionProxyUpgrade = "ProxyUpgrade"
)

// Server condition reasons.
const (
	ReasonConnected         = "Connected"
	ReasonUnreachable       = "Unreachable"
	ReasonHostKeyMismatch   = "HostKeyMismatch"
	ReasonAuthFailed        = "AuthenticationFailed"
	ReasonJumpHostNotReady  = "JumpHostNotReady"
	ReasonDockerAvailable   = "DockerAvailable"
	ReasonDockerUnavailable = "DockerUnavailable"
	ReasonProxyRunning      = "ProxyRunning"
	ReasonProxyFailed       = "ProxyFailed"
	ReasonProxyDisabled     = "ProxyDisabled"

	// Proxy rollout reasons, on ProxyUpgrade and (but for the last) on Ready.
	ReasonProxyUpgrading      = "ProxyUpgrading"
	ReasonProxyUpgradeWaiting = "ProxyUpgradeWaiting"
	ReasonProxyUpgradeHeld    = "ProxyUpgradeHeld"
	ReasonProxyUpgradeFailed  = "ProxyUpgradeFailed"
	ReasonProxyUpToDate       = "ProxyUpToDate"
)

// HostKeyPolicy says how the SSH host key of a Server is verified. It is always verified.
// +kubebuilder:validation:Enum=Pinned;TrustOnFirstUse
type HostKeyPolicy string

const (
	// HostKeyPinned accepts only the keys listed in knownHosts.
	HostKeyPinned HostKeyPolicy = "Pinned"
	// HostKeyTrustOnFirstUse records the key seen on first contact in status, then accepts
	// only that key (plus any listed in knownHosts).
	HostKeyTrustOnFirstUse HostKeyPolicy = "TrustOnFirstUse"
)

// DockerBootstrap says whether the controller installs Docker on a host that lacks it.
// +kubebuilder:validation:Enum=Never;IfMissing
type DockerBootstrap string

const (
	// DockerBootstrapNever expects Docker to be installed already.
	DockerBootstrapNever DockerBootstrap = "Never"
	// DockerBootstrapIfMissing installs the distribution's Docker package when the socket is
	// absent, as `kamal server bootstrap` does. It needs a root user.
	DockerBootstrapIfMissing DockerBootstrap = "IfMissing"
)

// ServerSpec is how to reach a Docker host over SSH and how its proxy runs.
// +kubebuilder:validation:XValidation:rule="(has(self.hostKeyPolicy) && self.hostKeyPolicy != 'Pinned') || has(self.knownHosts)",message="hostKeyPolicy Pinned needs at least one entry in knownHosts"
type ServerSpec struct {
	// Address is the host name or IP address sshd listens on.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^([A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*|[0-9a-fA-F:]*:[0-9a-fA-F:.]+)$`
	Address string `json:"address"`

	// Port of sshd.
	// +optional
	// +kubebuilder:default=22
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// User to log in as. Docker must be usable by it (root, or a member of the docker group, or
	// rootless Docker with docker.socketPath set).
	// +optional
	// +kubebuilder:default=root
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[a-z_][-a-z0-9_.]*$`
	User string `json:"user,omitempty"`

	// SSHKeySecretRef names a Secret of type kubernetes.io/ssh-auth whose key ssh-privatekey
	// holds the private key.
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0",message="sshKeySecretRef.name must not be empty"
	SSHKeySecretRef corev1.LocalObjectReference `json:"sshKeySecretRef"`

	// KnownHosts are the host's accepted public keys in authorized_keys form
	// ("ssh-ed25519 AAAAC3Nz…"), as `ssh-keyscan` prints them without the host name.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Pattern=`^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( .*)?$`
	KnownHosts []string `json:"knownHosts,omitempty"`

	// HostKeyPolicy: Pinned (only knownHosts) or TrustOnFirstUse (record the first key seen in
	// status, then accept only it).
	// +optional
	// +kubebuilder:default=Pinned
	HostKeyPolicy HostKeyPolicy `json:"hostKeyPolicy,omitempty"`

	// JumpHost reaches this Server through another SSH host, as `ssh -J`.
	// +optional
	JumpHost *JumpHost `json:"jumpHost,omitempty"`

	// KeepAliveInterval between SSH keepalive requests. A host that leaves keepAliveCountMax
	// of them in a row unanswered is reported unreachable and redialled: with the defaults
	// (3s, 3) within about 12 s. From 1s to 10m.
	// +optional
	// +kubebuilder:default="3s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="keepAliveInterval must be at least 1s"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('10m')",message="keepAliveInterval must be at most 10m"
	KeepAliveInterval *metav1.Duration `json:"keepAliveInterval,omitempty"`

	// KeepAliveCountMax is how many keepalive requests in a row may go unanswered before the
	// connection counts as lost.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	KeepAliveCountMax int32 `json:"keepAliveCountMax,omitempty"`

	// Docker is how the Docker engine is reached on the host.
	// +optional
	// +kubebuilder:default={}
	Docker DockerSettings `json:"docker,omitempty"`

	// Proxy is the kamal-proxy container of this host, shared by every Deployment on it.
	// +optional
	// +kubebuilder:default={}
	Proxy ServerProxy `json:"proxy,omitempty"`

	// AllowedNamespaces says which namespaces' Deployments and Accessories may place on this
	// Server, as a Gateway's allowedRoutes admits routes: Same (only this Server's namespace,
	// the default), All, or the namespaces a label selector matches. This Server's own
	// namespace is always allowed. Objects of another namespace place here by naming this
	// namespace in their servers selection, and the controller's guest policy applies to them.
	// +optional
	// +kubebuilder:default={from: Same}
	AllowedNamespaces *AllowedNamespaces `json:"allowedNamespaces,omitempty"`
}

// NamespacesFrom says which namespaces a Server admits.
// +kubebuilder:validation:Enum=Same;All;Selector
type NamespacesFrom string

const (
	// NamespacesFromSame admits only the Server's own namespace.
	NamespacesFromSame NamespacesFrom = "Same"
	// NamespacesFromAll admits every namespace.
	NamespacesFromAll NamespacesFrom = "All"
	// NamespacesFromSelector admits the namespaces whose labels the selector matches.
	NamespacesFromSelector NamespacesFrom = "Selector"
)

// AllowedNamespaces admits the Deployments and Accessories of other namespaces onto a Server.
// +kubebuilder:validation:XValidation:rule="(has(self.from) && self.from == 'Selector') == has(self.selector)",message="allowedNamespaces.selector is required when from is Selector, and only allowed then"
// +kubebuilder:validation:XValidation:rule="!has(self.selector) || (has(self.selector.matchLabels) && size(self.selector.matchLabels) > 0) || (has(self.selector.matchExpressions) && size(self.selector.matchExpressions) > 0)",message="allowedNamespaces.selector is empty and would match every namespace: use from: All, or select by labels with matchLabels or matchExpressions"
type AllowedNamespaces struct {
	// From is Same, All or Selector.
	// +optional
	// +kubebuilder:default=Same
	From NamespacesFrom `json:"from,omitempty"`

	// Selector matches the labels of the Namespace objects admitted, with from Selector
	// (e.g. kubernetes.io/metadata.name, which every namespace carries).
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// JumpHost is an SSH host that forwards the connection: another Server, or an address.
// +kubebuilder:validation:XValidation:rule="has(self.serverName) != has(self.address)",message="set exactly one of jumpHost.serverName or jumpHost.address"
// +kubebuilder:validation:XValidation:rule="!has(self.address) || has(self.knownHosts)",message="a jump host given by address needs knownHosts: host keys are always verified"
// +kubebuilder:validation:XValidation:rule="has(self.address) || (!has(self.knownHosts) && !has(self.user) && !has(self.port) && !has(self.sshKeySecretRef))",message="a jump host given by serverName takes its address, port, user, key and host keys from that Server"
type JumpHost struct {
	// ServerName is another Server of the same namespace.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	ServerName string `json:"serverName,omitempty"`

	// Address of the jump host.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^([A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*|[0-9a-fA-F:]*:[0-9a-fA-F:.]+)$`
	Address string `json:"address,omitempty"`

	// Port of the jump host's sshd (default 22).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// User on the jump host (default: the Server's user).
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[a-z_][-a-z0-9_.]*$`
	User string `json:"user,omitempty"`

	// SSHKeySecretRef for the jump host (default: the Server's key).
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0",message="jumpHost.sshKeySecretRef.name must not be empty"
	SSHKeySecretRef *corev1.LocalObjectReference `json:"sshKeySecretRef,omitempty"`

	// KnownHosts of the jump host, in authorized_keys form.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Pattern=`^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( .*)?$`
	KnownHosts []string `json:"knownHosts,omitempty"`
}

// DockerSettings say where the Docker engine listens on the host.
type DockerSettings struct {
	// SocketPath of the Docker engine on the host; set it for rootless Docker
	// (e.g. /run/user/1000/docker.sock).
	// +optional
	// +kubebuilder:default="/var/run/docker.sock"
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^/[A-Za-z0-9._/-]+$`
	SocketPath string `json:"socketPath,omitempty"`

	// Bootstrap installs Docker when it is missing (IfMissing) or never (Never).
	// +optional
	// +kubebuilder:default=Never
	Bootstrap DockerBootstrap `json:"bootstrap,omitempty"`
}

// ServerProxy is how kamal-proxy runs on this host. Kamal's `proxy.run` settings live here,
// since one proxy serves every Deployment on the host.
// +kubebuilder:validation:XValidation:rule="!has(self.httpPort) || !has(self.httpsPort) || self.httpPort != self.httpsPort",message="proxy httpPort and httpsPort must differ"
type ServerProxy struct {
	// Enabled runs the proxy on this host. A host that only runs accessories or roles without
	// the proxy may turn it off.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`

	// Image of the proxy (a Caddy build); empty means the controller's default. The same
	// reference grammar as a Deployment's image; a tag is not required.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9._:/@-]+$`
	// +kubebuilder:validation:XValidation:rule="self.lowerAscii().matches('^((localhost|[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?([.][a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)+(:[0-9]+)?|[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?:[0-9]+)/)?[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*)*(:[a-zA-Z0-9_][a-zA-Z0-9_.-]*)?(@sha256:[a-f0-9]{64})?$')",message="image must be a reference [registry[:port]/]repository[:tag][@sha256:digest]: repository components are lowercase letters and digits joined by '.', '_', '__' or '-', and none is empty"
	// +kubebuilder:validation:XValidation:rule="self.matches('^((localhost|[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?([.][a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)+(:[0-9]+)?|[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?:[0-9]+)/)?[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*)*(:[a-zA-Z0-9_][a-zA-Z0-9_.-]*)?(@sha256:[a-f0-9]{64})?$') || !self.lowerAscii().matches('^((localhost|[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?([.][a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)+(:[0-9]+)?|[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?:[0-9]+)/)?[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*)*(:[a-zA-Z0-9_][a-zA-Z0-9_.-]*)?(@sha256:[a-f0-9]{64})?$')",message="image repository must be lowercase: only the registry host and the tag may have capital letters"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[^@]*:[A-Za-z0-9_.-]{129,}(@.*)?$')",message="image tag must be at most 128 characters"
	// +kubebuilder:validation:XValidation:rule="self.matches('^[^@]{0,255}(:[A-Za-z0-9_.-]*)?(@.*)?$')",message="image name (registry and repository, without the tag) must be at most 255 characters"
	Image string `json:"image,omitempty"`

	// CatchAllFrom says whose routes without host names this proxy serves: such a route answers
	// every host name no other route names. Same (the default): only Deployments of this
	// Server's namespace; All: those of every namespace the Server admits; None: nobody's. A
	// Deployment refused here is Stalled (CatchAllNotAllowed); give its proxy hosts.
	// +optional
	// +kubebuilder:validation:Enum=Same;All;None
	CatchAllFrom string `json:"catchAllFrom,omitempty"`

	// HTTPPort published on the host for HTTP.
	// +optional
	// +kubebuilder:default=80
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	HTTPPort int32 `json:"httpPort,omitempty"`

	// HTTPSPort published on the host for HTTPS.
	// +optional
	// +kubebuilder:default=443
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	HTTPSPort int32 `json:"httpsPort,omitempty"`

	// BindIPs are the host addresses the ports are published on (default: all).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:Pattern=`^[0-9a-fA-F:.]+$`
	BindIPs []string `json:"bindIPs,omitempty"`

	// Options are extra Docker settings of the proxy container.
	// +optional
	Options *ContainerOptions `json:"options,omitempty"`

	// Logging of the proxy container.
	// +optional
	Logging *Logging `json:"logging,omitempty"`
}

// ServerFacts are what the controller read from the host.
type ServerFacts struct {
	// DockerVersion of the engine.
	// +optional
	DockerVersion string `json:"dockerVersion,omitempty"`
	// APIVersion of the Docker Engine API in use.
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`
	// OperatingSystem of the host.
	// +optional
	OperatingSystem string `json:"operatingSystem,omitempty"`
	// KernelVersion of the host.
	// +optional
	KernelVersion string `json:"kernelVersion,omitempty"`
	// Architecture of the host, as Docker reports it.
	// +optional
	Architecture string `json:"architecture,omitempty"`
	// CPUs of the host.
	// +optional
	CPUs int32 `json:"cpus,omitempty"`
	// Memory of the host in bytes.
	// +optional
	MemoryBytes int64 `json:"memoryBytes,omitempty"`
}

// ServerStatus is what the controller observed of the host.
type ServerStatus struct {
	CommonStatus `json:",inline"`

	// HostKeyFingerprint is the SHA256 fingerprint of the host key accepted on the last
	// connection under the current spec. It identifies the host: a younger Server that sees the
	// same key is a duplicate (DuplicateServer).
	// +optional
	HostKeyFingerprint string `json:"hostKeyFingerprint,omitempty"`

	// TrustedHostKey is the key recorded on first contact under TrustOnFirstUse; from then on
	// only it is accepted. Delete it from status to trust a new key deliberately.
	// +optional
	TrustedHostKey string `json:"trustedHostKey,omitempty"`

	// Facts read from the host.
	// +optional
	Facts *ServerFacts `json:"facts,omitempty"`

	// ProxyImage is the image of the running kamal-proxy container.
	// +optional
	ProxyImage string `json:"proxyImage,omitempty"`

	// ProxyHash identifies the settings (image included) of the running kamal-proxy
	// container. The controller rolls proxy changes host by host from it.
	// +optional
	ProxyHash string `json:"proxyHash,omitempty"`

	// ProxyFailedHash identifies the proxy settings whose replacement failed on this host. While
	// the host's settings still hash to it, the proxy rollout is halted on every Server; a
	// change of the proxy image or settings retries.
	// +optional
	ProxyFailedHash string `json:"proxyFailedHash,omitempty"`
}

// Server is a Docker host reached over SSH: Kamal's entry in `servers:`.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ksrv,categories=kamal
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.address`
// +kubebuilder:printcolumn:name="Docker",type=string,JSONPath=`.status.facts.dockerVersion`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type Server struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ServerSpec `json:"spec"`
	// +kubebuilder:default={observedGeneration:-1}
	Status ServerStatus `json:"status,omitempty"`
}

// ServerList is a list of Servers.
// +kubebuilder:object:root=true
type ServerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Server `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Server{}, &ServerList{})
}
