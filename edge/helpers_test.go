package edge_test

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-iot/sluice/internal/metrictest"
)

func splitAddr(t *testing.T, addr string) (host, port string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

// jetStream connects to a site's embedded NATS server (nats.listen, addr) until the test ends.
func jetStream(t *testing.T, addr string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect("nats://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// getJSON decodes the body of GET http://addr/path (an admin endpoint such as /readyz or
// /status) into a T.
func getJSON[T any](t *testing.T, addr, path string) T {
	t.Helper()
	name := strings.TrimPrefix(path, "/")
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer resp.Body.Close()
	var v T
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("%s body: %v", name, err)
	}
	return v
}

// gauge returns the sum of the children of counter or gauge name whose labels include label
// ("name=value"; every child when label is empty).
func gauge(t *testing.T, reg prometheus.Gatherer, name, label string) float64 {
	t.Helper()
	k, v, _ := strings.Cut(label, "=")
	return metrictest.Sum(t, reg, name, k, v)
}
