package kamalimport

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// proxy maps Kamal's proxy section (of the app or a role) to the Deployment's proxy fields.
// proxy.run is per host: it goes to the Servers (serverProxy).
func (im *importer) proxy(path string, v any) *kamalv1.Proxy {
	m, ok := v.(map[string]any)
	if !ok {
		im.warn(path, "not a map; not mapped")
		return nil
	}
	p := &kamalv1.Proxy{}
	boolField := func(k string, dst **bool) {
		b, err := boolOf(m[k])
		if err != nil {
			im.warn(path+"."+k, err.Error()+"; not mapped")
			return
		}
		*dst = ptr(b)
	}
	for _, k := range sortedKeys(m) {
		kp := path + "." + k
		switch k {
		case "host", "hosts":
			for _, h := range strs(m[k]) {
				for _, h := range strings.Split(h, ",") {
					if h = strings.TrimSpace(h); h != "" {
						p.Hosts = append(p.Hosts, strings.ToLower(h))
					}
				}
			}
		case "app_port":
			n, err := intOrPercent(m[k])
			if err != nil || n.Type != 0 {
				im.warn(kp, fmt.Sprintf("%q is not a port; not mapped", str(m[k])))
				continue
			}
			p.AppPort = ptr(n.IntVal)
		case "ssl":
			switch sv := m[k].(type) {
			case map[string]any:
				p.SSL = ptr(true)
				p.SSLCertificateSecretRef = &corev1.LocalObjectReference{Name: tlsSecretName(im.service)}
				im.tls = &[2]string{str(sv["certificate_pem"]), str(sv["private_key_pem"])}
				for _, sk := range sortedKeys(sv) {
					if sk != "certificate_pem" && sk != "private_key_pem" {
						im.warn(kp+"."+sk, "not mapped: ssl takes certificate_pem and private_key_pem")
					}
				}
			default:
				boolField(k, &p.SSL)
			}
		case "ssl_redirect":
			boolField(k, &p.SSLRedirect)
		case "forward_headers":
			boolField(k, &p.ForwardHeaders)
		case "strip_path_prefix":
			boolField(k, &p.StripPathPrefix)
		case "response_timeout":
			p.ResponseTimeout = im.seconds(kp, m[k])
		case "path_prefix", "path_prefixes":
			for _, pp := range strs(m[k]) {
				for _, pp := range strings.Split(pp, ",") {
					if pp = strings.TrimSpace(pp); pp != "" {
						p.PathPrefixes = append(p.PathPrefixes, pp)
					}
				}
			}
		case "healthcheck":
			hc, _ := m[k].(map[string]any)
			p.Healthcheck = &kamalv1.ProxyHealthcheck{}
			for _, hk := range sortedKeys(hc) {
				switch hk {
				case "path":
					p.Healthcheck.Path = str(hc[hk])
				case "interval":
					p.Healthcheck.Interval = im.seconds(kp+"."+hk, hc[hk])
				case "timeout":
					p.Healthcheck.Timeout = im.seconds(kp+"."+hk, hc[hk])
				default:
					im.warn(kp+"."+hk, "not mapped: the health check has path, interval and timeout")
				}
			}
		case "buffering":
			bm, _ := m[k].(map[string]any)
			b := &kamalv1.ProxyBuffering{}
			for _, bk := range sortedKeys(bm) {
				bkp := kp + "." + bk
				switch bk {
				case "requests", "responses":
					v, err := boolOf(bm[bk])
					if err != nil {
						im.warn(bkp, err.Error()+"; not mapped")
						continue
					}
					if bk == "requests" {
						b.Requests = ptr(v)
					} else {
						b.Responses = ptr(v)
					}
				case "max_request_body", "max_response_body", "memory":
					q, err := bytesQuantity(bm[bk])
					if err != nil {
						im.warn(bkp, err.Error()+"; not mapped")
						continue
					}
					switch bk {
					case "max_request_body":
						b.MaxRequestBody = q
					case "max_response_body":
						b.MaxResponseBody = q
					default:
						b.Memory = q
					}
				default:
					im.warn(bkp, "not mapped: not a key of proxy.buffering")
				}
			}
			p.Buffering = b
		case "logging":
			lm, _ := m[k].(map[string]any)
			p.Logging = &kamalv1.ProxyLogging{}
			for _, lk := range sortedKeys(lm) {
				switch lk {
				case "request_headers":
					p.Logging.RequestHeaders = strs(lm[lk])
				case "response_headers":
					p.Logging.ResponseHeaders = strs(lm[lk])
				default:
					im.warn(kp+"."+lk, "not mapped: proxy.logging has request_headers and response_headers")
				}
			}
		case "run":
			if path != "proxy" {
				im.warn(kp, "not mapped: proxy.run is per host, only in the top-level proxy")
			}
			// The top-level one is read by serverProxy.
		default:
			im.warn(kp, "not mapped: not a key of Kamal's proxy section")
		}
	}
	return p
}

// serverProxy maps proxy.run to the proxy settings of a Server that runs the proxy.
func (im *importer) serverProxy(cfg map[string]any) kamalv1.ServerProxy {
	var sp kamalv1.ServerProxy
	pm, _ := cfg["proxy"].(map[string]any)
	run, _ := pm["run"].(map[string]any)
	for _, k := range sortedKeys(run) {
		kp := "proxy.run." + k
		v := run[k]
		switch k {
		case "http_port", "https_port":
			n, err := intOrPercent(v)
			if err != nil || n.Type != 0 {
				im.warn(kp, fmt.Sprintf("%q is not a port; not mapped", str(v)))
				continue
			}
			if k == "http_port" {
				sp.HTTPPort = n.IntVal
			} else {
				sp.HTTPSPort = n.IntVal
			}
		case "bind_ips":
			sp.BindIPs = strs(v)
		case "publish":
			if b, err := boolOf(v); err == nil && !b {
				sp.Enabled = ptr(false)
				im.warn(kp, "mapped to Server.spec.proxy.enabled: false, which turns the proxy off on the host altogether")
			}
		case "options":
			opts, _, _ := im.options(kp, v)
			sp.Options = opts
		case "log_max_size":
			sp.Logging = &kamalv1.Logging{Driver: "json-file", Options: map[string]string{"max-size": str(v)}}
		case "version", "registry", "repository":
			im.warn(kp, "not mapped: the proxy here is a Caddy build, not kamal-proxy; its image is the controller's --proxy-image or Server.spec.proxy.image")
		case "metrics_port", "debug":
			im.warn(kp, "not mapped: the proxy has no such setting")
		default:
			im.warn(kp, "not mapped: not a key of proxy.run")
		}
	}
	return sp
}
