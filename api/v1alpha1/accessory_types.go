package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Reasons of an Accessory's conditions.
const (
	// ReasonStarting: a container was created or started and does not serve yet.
	ReasonStarting = "Starting"
	// ReasonContainerFailed: a container exited or is unhealthy, or a Docker call failed.
	ReasonContainerFailed = "ContainerFailed"
)

// DeletionPolicy says what happens to an Accessory's data folders when it is deleted.
// +kubebuilder:validation:Enum=Retain;Delete
type DeletionPolicy string

const (
	// DeletionRetain removes the container and keeps the data folders on the host.
	DeletionRetain DeletionPolicy = "Retain"
	// DeletionDelete removes the container and the accessory's own folder on the host.
	DeletionDelete DeletionPolicy = "Delete"
)

// AccessorySpec is a long-running service next to the app, such as a database (Kamal's
// `accessories.<name>`). It has no zero-downtime upgrade: a change stops the old container and
// starts the new one on the same data.
type AccessorySpec struct {
	// Image to run, with a tag or a digest (e.g. postgres:15): the same reference grammar as a
	// Deployment's image. Unlike a Deployment's, the tag may be latest.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9._:/@-]+$`
	// +kubebuilder:validation:XValidation:rule="self.lowerAscii().matches('^((localhost|[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?([.][a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)+(:[0-9]+)?|[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?:[0-9]+)/)?[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*)*(:[a-zA-Z0-9_][a-zA-Z0-9_.-]*)?(@sha256:[a-f0-9]{64})?$')",message="image must be a reference [registry[:port]/]repository[:tag][@sha256:digest]: repository components are lowercase letters and digits joined by '.', '_', '__' or '-', and none is empty"
	// +kubebuilder:validation:XValidation:rule="self.matches('^((localhost|[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?([.][a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)+(:[0-9]+)?|[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?:[0-9]+)/)?[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*)*(:[a-zA-Z0-9_][a-zA-Z0-9_.-]*)?(@sha256:[a-f0-9]{64})?$') || !self.lowerAscii().matches('^((localhost|[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?([.][a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)+(:[0-9]+)?|[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?:[0-9]+)/)?[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*)*(:[a-zA-Z0-9_][a-zA-Z0-9_.-]*)?(@sha256:[a-f0-9]{64})?$')",message="image repository must be lowercase: only the registry host and the tag may have capital letters"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[^@]*:[A-Za-z0-9_.-]{129,}(@.*)?$')",message="image tag must be at most 128 characters"
	// +kubebuilder:validation:XValidation:rule="self.matches('^[^@]{0,255}(:[A-Za-z0-9_.-]*)?(@.*)?$')",message="image name (registry and repository, without the tag) must be at most 255 characters"
	// +kubebuilder:validation:XValidation:rule="self.matches(':[A-Za-z0-9_][A-Za-z0-9_.-]*$') || self.contains('@sha256:')",message="image must name a tag or a digest (e.g. postgres:15): an untagged image is whatever latest is at each pull"
	Image string `json:"image"`

	// ImagePullSecrets are Secrets of type kubernetes.io/dockerconfigjson sent with each pull.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:XValidation:rule="has(self.name) && size(self.name) > 0",message="imagePullSecrets[].name must not be empty"
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// Servers the accessory runs on.
	Servers ServerSelector `json:"servers"`

	// Port publishes a container port on the host, as Docker's "[ip:][hostPort:]containerPort[/proto]"
	// (e.g. "127.0.0.1:5432:5432") or a number (the same port on every host address).
	// +optional
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? (self >= 1 && self <= 65535) : self.matches('^(([0-9]{1,3}\\\\.){3}[0-9]{1,3}:|\\\\[[0-9a-fA-F:]+\\\\]:)?(([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]):)?([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])(/(tcp|udp|sctp))?$')",message="port must be a number from 1 to 65535 or \"[ip:][hostPort:]containerPort[/tcp|udp]\" with ports from 1 to 65535, e.g. \"127.0.0.1:5432:5432\""
	Port *intstr.IntOrString `json:"port,omitempty"`

	// Cmd replaces the image's command.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	Cmd []string `json:"cmd,omitempty"`

	// Env of the container.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=256
	Env []EnvVar `json:"env,omitempty"`

	// EnvFrom imports every key of Secrets or ConfigMaps as env.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	EnvFrom []EnvFromSource `json:"envFrom,omitempty"`

	// Files written on the host under the accessory's folder and mounted into the container. A
	// file dropped from the list is removed from the host.
	// +optional
	// +listType=map
	// +listMapKey=target
	// +kubebuilder:validation:MaxItems=64
	Files []AccessoryFile `json:"files,omitempty"`

	// Directories created on the host and bind-mounted, as "hostDir:containerPath[:ro]". A
	// relative hostDir lives under the accessory's folder on the host
	// (/var/lib/kamal-operator/accessories/<namespace>/<name>/), where its data survives
	// restarts, upgrades and (with deletionPolicy Retain) deletion; it may not be that folder
	// itself or under its files/, which holds the accessory's files. Host folders may not nest
	// (data and data/logs): the container could replace the inner folder with a symbolic link,
	// which Docker would follow on the host when it next binds it.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=512
	// +kubebuilder:validation:items:Pattern=`^[^:\x00]+:/[^:\x00]*(:ro|:rw)?$`
	// +kubebuilder:validation:XValidation:rule="self.all(d, !d.matches('^([^:]*/)?\\\\.\\\\.(/|:)'))",message="directories must not climb out of the accessory's folder with '..'"
	// +kubebuilder:validation:XValidation:rule="self.all(a, self.all(b, !b.startsWith(a.split(':')[0] + '/')))",message="directories must not nest (e.g. data and data/logs): the container could replace the inner folder with a symbolic link that Docker follows on the host; use folders side by side, e.g. data and logs"
	Directories []string `json:"directories,omitempty"`

	// Volumes mounted as given, as Docker's "source:target[:options]".
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:Pattern=`^(/[^:]*|[A-Za-z0-9][A-Za-z0-9_.-]*):/[^:]*(:[a-zA-Z,]+)?$`
	Volumes []string `json:"volumes,omitempty"`

	// Labels of the container.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('kamal.operator.dev/'))",message="labels under kamal.operator.dev/ are reserved for the controller"
	Labels map[string]string `json:"labels,omitempty"`

	// Options are Docker settings of the container.
	// +optional
	Options *ContainerOptions `json:"options,omitempty"`

	// Logging of the container.
	// +optional
	Logging *Logging `json:"logging,omitempty"`

	// ContainerName is the name the namespace's apps reach the accessory by on the namespace's
	// network (default: the Accessory's name). The container has this name on a host unless
	// another namespace's container holds it there; then its name gets a suffix, and this name
	// stays its alias on the namespace's network. kamal-proxy, kamal-proxy-… and kamal-setup-…
	// are reserved for the controller's own containers.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="!(self == 'kamal-proxy' || self.startsWith('kamal-proxy-') || self.startsWith('kamal-setup-'))",message="containerName is reserved: kamal-proxy and kamal-proxy-… are the proxy's containers and kamal-setup-… the accessories' setup containers on every host"
	ContainerName string `json:"containerName,omitempty"`

	// DeletionPolicy: Retain keeps the data folders on the host when the Accessory is deleted;
	// Delete removes the accessory's own folder too (never any other path). Either way its files
	// go. Folders and files are removed with the Server's proxy image, never following links.
	// +optional
	// +kubebuilder:default=Retain
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// AccessoryFile is a file made from a ConfigMap or Secret key.
// +kubebuilder:validation:XValidation:rule="has(self.configMapKeyRef) != has(self.secretKeyRef)",message="set exactly one of configMapKeyRef or secretKeyRef"
// +kubebuilder:validation:XValidation:rule="!has(self.secretKeyRef) || !has(self.mode) || self.mode % 8 == 0",message="a file from a Secret must not be readable by others (mode must end in 0)"
type AccessoryFile struct {
	// ConfigMapKeyRef is the content's source; name and key must not be empty.
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0",message="configMapKeyRef.name must not be empty"
	// +kubebuilder:validation:XValidation:rule="size(self.key) > 0",message="configMapKeyRef.key must not be empty"
	ConfigMapKeyRef *corev1.ConfigMapKeySelector `json:"configMapKeyRef,omitempty"`

	// SecretKeyRef is the content's source; name and key must not be empty.
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0",message="secretKeyRef.name must not be empty"
	// +kubebuilder:validation:XValidation:rule="size(self.key) > 0",message="secretKeyRef.key must not be empty"
	SecretKeyRef *corev1.SecretKeySelector `json:"secretKeyRef,omitempty"`

	// Target is the absolute path in the container.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/[^:\x00]*[^/:\x00]$`
	// +kubebuilder:validation:XValidation:rule="!self.matches('(^|/)\\\\.\\\\.(/|$)')",message="file target must not contain '..'"
	Target string `json:"target"`

	// Mode of the file, e.g. 0644 (default 0644, or 0600 for Secret content).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=511
	Mode *int32 `json:"mode,omitempty"`

	// Owner of the file on the host, "uid[:gid]" (default root).
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]+(:[0-9]+)?$`
	Owner string `json:"owner,omitempty"`
}

// AccessoryServerStatus is the accessory on one server.
type AccessoryServerStatus struct {
	// Server name; namespace/name for a Server of another namespace.
	Server string `json:"server"`
	// Container name.
	// +optional
	Container string `json:"container,omitempty"`
	// State of the container.
	State TargetState `json:"state"`
	// Message says what is wrong or under way.
	// +optional
	Message string `json:"message,omitempty"`
}

// AccessoryStatus is what runs on the hosts.
type AccessoryStatus struct {
	CommonStatus `json:",inline"`

	// Image running on every server.
	// +optional
	Image string `json:"image,omitempty"`

	// ServersReady is "ready/total", for the printer column.
	// +optional
	ServersReady string `json:"serversReady,omitempty"`

	// Servers is the accessory on each server: all of them up to 100 servers, beyond that only
	// those where it is not Running (at most 100), so that status stays small on any fleet.
	// +optional
	// +listType=map
	// +listMapKey=server
	Servers []AccessoryServerStatus `json:"servers,omitempty"`

	// ServersNotListed counts the servers left out of servers (0 when it lists them all).
	// +optional
	ServersNotListed int32 `json:"serversNotListed,omitempty"`

	// GuestNamespaces are the namespaces of Servers of other namespaces the accessory runs on,
	// or ran on and may still have a container on: their Servers are looked at for containers
	// to remove, which servers alone may not name once it is bounded.
	// +optional
	// +listType=set
	GuestNamespaces []string `json:"guestNamespaces,omitempty"`
}

// Accessory is a service next to the app, such as a database: Kamal's accessory.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=kacc,categories=kamal
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.image`
// +kubebuilder:printcolumn:name="Servers",type=string,JSONPath=`.status.serversReady`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
// +kubebuilder:validation:XValidation:rule="has(self.spec.containerName) || (self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 63)",message="the Accessory's name is its container's DNS name on the namespace's network: use a DNS label or set spec.containerName"
// +kubebuilder:validation:XValidation:rule="has(self.spec.containerName) || !(self.metadata.name == 'kamal-proxy' || self.metadata.name.startsWith('kamal-proxy-') || self.metadata.name.startsWith('kamal-setup-'))",message="the Accessory's name is its container name, and it is reserved: kamal-proxy and kamal-proxy-… are the proxy's containers and kamal-setup-… the accessories' setup containers on every host; set spec.containerName to another name"
type Accessory struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec AccessorySpec `json:"spec"`
	// +kubebuilder:default={observedGeneration:-1}
	Status AccessoryStatus `json:"status,omitempty"`
}

// AccessoryList is a list of Accessories.
// +kubebuilder:object:root=true
type AccessoryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Accessory `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Accessory{}, &AccessoryList{})
}
