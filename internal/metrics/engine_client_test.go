package metrics

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/moby/moby/client"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The hooks count and time real requests of the Engine API client, by operation.
func TestEngineClientOptions(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		switch {
		case strings.HasSuffix(r.URL.Path, "/start"):
			w.WriteHeader(http.StatusNoContent)
		case strings.HasSuffix(r.URL.Path, "/stop"):
			http.Error(w, `{"message":"No such container: abc"}`, http.StatusNotFound)
		default:
			_, _ = w.Write([]byte("OK"))
		}
	}))
	defer srv.Close()
	cli, err := client.New(append([]client.Opt{client.WithHost("tcp://" + srv.Listener.Addr().String()), client.WithAPIVersion("1.41")},
		EngineClientOptions()...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	start := testutil.ToFloat64(engineRequests.WithLabelValues("POST /containers/{id}/start", "2xx"))
	stop := testutil.ToFloat64(engineRequests.WithLabelValues("POST /containers/{id}/stop", "4xx"))
	hist := testutil.CollectAndCount(engineDuration)
	ctx := context.Background()
	for _, id := range []string{"0123abcd", "web-v2"} {
		if _, err := cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.ContainerStop(ctx, "abc", client.ContainerStopOptions{}); err == nil {
		t.Fatal("stop of a missing container succeeded")
	}
	if got := testutil.ToFloat64(engineRequests.WithLabelValues("POST /containers/{id}/start", "2xx")) - start; got != 2 {
		t.Errorf("start requests counted %v, want 2", got)
	}
	if got := testutil.ToFloat64(engineRequests.WithLabelValues("POST /containers/{id}/stop", "4xx")) - stop; got != 1 {
		t.Errorf("stop requests counted %v, want 1", got)
	}
	if got := testutil.CollectAndCount(engineDuration); got < hist+2 {
		t.Errorf("%d latency series, want at least %d (start and stop timed)", got, hist+2)
	}
	if n := testutil.CollectAndCount(engineRequests); n > 3 {
		t.Errorf("%d request series for two ids, want at most 3", n)
	}
}
