package release

import (
	"time"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// Proxy is a role's effective routing: the Deployment's proxy, the role's overrides, and the
// documented defaults.
type Proxy struct {
	Hosts           []string      `json:"hosts,omitempty"`
	PathPrefixes    []string      `json:"pathPrefixes,omitempty"`
	StripPathPrefix bool          `json:"stripPathPrefix"`
	AppPort         int32         `json:"appPort"`
	ForwardHeaders  bool          `json:"forwardHeaders"`
	ResponseTimeout time.Duration `json:"responseTimeout"`
	RequestBuffer   int64         `json:"requestBuffer,omitempty"`
	ResponseBuffer  int64         `json:"responseBuffer,omitempty"`
	MaxRequestBody  int64         `json:"maxRequestBody,omitempty"`
	HealthPath      string        `json:"healthPath"`
	HealthInterval  time.Duration `json:"healthInterval"`
	HealthTimeout   time.Duration `json:"healthTimeout"`
	// SSL serves the hosts over HTTPS; SSLRedirect sends plain HTTP to HTTPS (default true
	// with SSL). Empty when off, so the revision of HTTP-only roles is as before.
	SSL         bool `json:"ssl,omitempty"`
	SSLRedirect bool `json:"sslRedirect,omitempty"`
}

// Defaults, as Kamal's.
const (
	DefaultAppPort         = 80
	DefaultHealthPath      = "/up"
	DefaultHealthInterval  = time.Second
	DefaultHealthTimeout   = 5 * time.Second
	DefaultResponseTimeout = 30 * time.Second
	DefaultBufferMemory    = 1 << 20
)

// EffectiveProxy merges spec.proxy, the role's proxy and the defaults; nil means the role is
// not behind the proxy. The primary role is, unless turned off; another role is when its own
// proxy section is present and not turned off.
func EffectiveProxy(spec *kamalv1.DeploymentSpec, roleName string) *Proxy {
	top := spec.Proxy
	role := spec.Roles[roleName].Proxy
	enabled := roleName == spec.PrimaryRole
	if top != nil && top.Enabled != nil && roleName == spec.PrimaryRole {
		enabled = *top.Enabled
	}
	if role != nil {
		enabled = role.Enabled == nil || *role.Enabled
	}
	if !enabled {
		return nil
	}
	layers := []*kamalv1.Proxy{top, role}
	p := &Proxy{
		StripPathPrefix: true, AppPort: DefaultAppPort, ResponseTimeout: DefaultResponseTimeout,
		HealthPath: DefaultHealthPath, HealthInterval: DefaultHealthInterval, HealthTimeout: DefaultHealthTimeout,
	}
	forward, redirect := (*bool)(nil), (*bool)(nil)
	for _, l := range layers {
		if l == nil {
			continue
		}
		if l.Hosts != nil {
			p.Hosts = l.Hosts
		}
		if l.PathPrefixes != nil {
			p.PathPrefixes = l.PathPrefixes
		}
		if l.StripPathPrefix != nil {
			p.StripPathPrefix = *l.StripPathPrefix
		}
		if l.AppPort != nil {
			p.AppPort = *l.AppPort
		}
		if l.ForwardHeaders != nil {
			forward = l.ForwardHeaders
		}
		if l.SSL != nil {
			p.SSL = *l.SSL
		}
		if l.SSLRedirect != nil {
			redirect = l.SSLRedirect
		}
		if l.ResponseTimeout != nil {
			p.ResponseTimeout = l.ResponseTimeout.Duration
		}
		if b := l.Buffering; b != nil {
			if b.Requests != nil && *b.Requests {
				p.RequestBuffer = DefaultBufferMemory
			}
			if b.Responses != nil && *b.Responses {
				p.ResponseBuffer = DefaultBufferMemory
			}
			if b.Memory != nil && (p.RequestBuffer > 0 || p.ResponseBuffer > 0) {
				if p.RequestBuffer > 0 {
					p.RequestBuffer = b.Memory.Value()
				}
				if p.ResponseBuffer > 0 {
					p.ResponseBuffer = b.Memory.Value()
				}
			}
			if b.MaxRequestBody != nil {
				p.MaxRequestBody = b.MaxRequestBody.Value()
			}
		}
		if h := l.Healthcheck; h != nil {
			if h.Path != "" {
				p.HealthPath = h.Path
			}
			if h.Interval != nil {
				p.HealthInterval = h.Interval.Duration
			}
			if h.Timeout != nil {
				p.HealthTimeout = h.Timeout.Duration
			}
		}
	}
	// As Kamal: behind TLS the proxy is the edge, so the client's X-Forwarded-* are replaced
	// unless asked otherwise; without TLS a load balancer in front usually set them.
	p.ForwardHeaders = !p.SSL
	if forward != nil {
		p.ForwardHeaders = *forward
	}
	p.SSLRedirect = p.SSL && (redirect == nil || *redirect)
	return p
}
