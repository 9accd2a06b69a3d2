package fleetsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ControlHandler is the fleet's control endpoint, for a harness to drive a running fleet:
//
//	GET  /state                          hosts, addresses, host keys, delays (as the state file)
//	GET  /calls[?host=N]                 call counts by template, of the fleet or of host N
//	POST /calls/reset                    forget every host's call counts
//	GET  /unknown                        calls the simulator could not answer (must stay empty)
//	GET  /conns                          SSH connections open now and established since the start
//	GET  /delays                         the delays
//	PUT  /delays                         {"pull":"2s","start":"100ms","health":"1s"} (Go durations; absent fields stay)
//	PUT  /faults?hosts=0-9,12            {"refuse":true,"slow":"200ms","engineDown":false} on those hosts (all when absent)
//	GET  /faults                         the hosts with a fault switched on
//	POST /kill?host=N&container=NAME     kill a running container (exit 137)
//
// Hosts are numbered from 0 in address order.
func (f *Fleet) ControlHandler(control string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, f.State(control)) })
	mux.HandleFunc("GET /calls", func(w http.ResponseWriter, r *http.Request) {
		if s := r.URL.Query().Get("host"); s != "" {
			h, err := f.hostArg(s)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			writeJSON(w, http.StatusOK, h.Calls())
			return
		}
		writeJSON(w, http.StatusOK, f.Calls())
	})
	mux.HandleFunc("POST /calls/reset", func(w http.ResponseWriter, r *http.Request) {
		for _, h := range f.hosts {
			h.ResetCalls()
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /unknown", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, append([]string{}, f.Unknown()...))
	})
	mux.HandleFunc("GET /conns", func(w http.ResponseWriter, r *http.Request) {
		open, accepted := f.Conns()
		writeJSON(w, http.StatusOK, map[string]int{"open": open, "accepted": accepted})
	})
	mux.HandleFunc("GET /delays", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, delaysJSON(f.Delays())) })
	mux.HandleFunc("PUT /delays", func(w http.ResponseWriter, r *http.Request) {
		var b map[string]string
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		d := f.Delays()
		for k, v := range b {
			dur, err := time.ParseDuration(v)
			if err != nil {
				http.Error(w, fmt.Sprintf("%s: %v", k, err), http.StatusBadRequest)
				return
			}
			switch k {
			case "pull":
				d.Pull = dur
			case "start":
				d.Start = dur
			case "health":
				d.Health = dur
			default:
				http.Error(w, "unknown delay "+k, http.StatusBadRequest)
				return
			}
		}
		f.SetDelays(d)
		writeJSON(w, http.StatusOK, delaysJSON(d))
	})
	mux.HandleFunc("PUT /faults", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Refuse     bool   `json:"refuse"`
			Slow       string `json:"slow"`
			EngineDown bool   `json:"engineDown"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fs := Faults{Refuse: b.Refuse, EngineDown: b.EngineDown}
		if b.Slow != "" {
			d, err := time.ParseDuration(b.Slow)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			fs.Slow = d
		}
		hosts, err := f.hostsArg(r.URL.Query().Get("hosts"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, h := range hosts {
			h.SetFaults(fs)
		}
		writeJSON(w, http.StatusOK, map[string]int{"hosts": len(hosts)})
	})
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, r *http.Request) {
		out := map[string]Faults{}
		for _, h := range f.hosts {
			if fs := h.Faults(); fs != (Faults{}) {
				out[strconv.Itoa(h.Index)] = fs
			}
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /kill", func(w http.ResponseWriter, r *http.Request) {
		h, err := f.hostArg(r.URL.Query().Get("host"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if !h.KillContainer(r.URL.Query().Get("container")) {
			http.Error(w, "no such running container", http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func delaysJSON(d Delays) map[string]string {
	return map[string]string{"pull": d.Pull.String(), "start": d.Start.String(), "health": d.Health.String()}
}

func (f *Fleet) hostArg(s string) (*Host, error) {
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 || i >= len(f.hosts) {
		return nil, fmt.Errorf("host %q: want 0..%d", s, len(f.hosts)-1)
	}
	return f.hosts[i], nil
}

// hostsArg reads "0-9,12" (every host when empty).
func (f *Fleet) hostsArg(s string) ([]*Host, error) {
	if s == "" {
		return f.hosts, nil
	}
	var out []*Host
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || a < 0 || b >= len(f.hosts) || a > b {
			return nil, fmt.Errorf("hosts %q: want ranges within 0..%d", s, len(f.hosts)-1)
		}
		out = append(out, f.hosts[a:b+1]...)
	}
	return out, nil
}
