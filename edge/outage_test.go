package edge_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/internal/sitetest"
)

// The database disappears for a while during a QoS 1 stream: Sluice keeps acknowledging,
// /readyz says the sink is degraded, and every reading arrives once the database is back.
func TestDatabaseOutage(t *testing.T) {
	cfg, proxy := proxiedConfig(t)
	cfg.Sink.Targets[0].RetryMax = 500 * time.Millisecond
	site := sitetest.Start(t, cfg)

	cl := mqtttest.Connect(t, site.MQTTAddr, "outage")
	defer cl.Disconnect(100)
	var sent atomic.Int64
	publish := func(n int) {
		for range n {
			i := sent.Add(1)
			tok := cl.Publish("sensors/outage/up", 1, false, fmt.Sprintf(`{"seq":%d,"time":%d}`, i, 1_700_000_000_000+i))
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("message %d not acknowledged during the outage: %v", i, tok.Error())
			}
			time.Sleep(time.Millisecond)
		}
	}

	publish(500)
	if n := site.WaitRows(t, "SELECT count(*) FROM readings", 500, 20*time.Second); n != 500 {
		t.Fatalf("before the outage: got %d readings, want 500", n)
	}

	proxy.Cut()
	publish(1000) // acknowledged from the buffer while the database is unreachable
	var r edge.Readiness
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if r = getJSON[edge.Readiness](t, site.HTTPAddr, "/readyz"); r.Sinks["main"] == "degraded" {
			break
		}
	}
	if r.Status != "degraded" || r.Sinks["main"] != "degraded" || r.Buffer != "ok" {
		t.Fatalf("readyz during the outage: got %+v, want status and sink degraded, buffer ok", r)
	}
	proxy.Restore()
	publish(500)

	want := sent.Load()
	if n := site.WaitRows(t, "SELECT count(*) FROM readings", want, 60*time.Second); n != want {
		t.Fatalf("after the outage: got %d readings, want %d", n, want)
	}
	if d := pgtest.Count(t, site.Schema, "SELECT count(DISTINCT value) FROM readings"); d != want {
		t.Fatalf("distinct seq values: got %d, want %d", d, want)
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if r = getJSON[edge.Readiness](t, site.HTTPAddr, "/readyz"); r.Status == "ready" {
			break
		}
	}
	if r.Status != "ready" {
		t.Fatalf("readyz after recovery: got %+v, want ready", r)
	}
}
