package edge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/sitetest"
)

// readyz is GET /readyz: its HTTP status and body.
func readyz(t *testing.T, addr string) (int, edge.Readiness) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r edge.Readiness
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("readyz body: %v", err)
	}
	return resp.StatusCode, r
}

// TestReadyzBufferFull fills a 1 MiB buffer while the database is cut. /readyz says the buffer
// is near full (degraded, HTTP 200) before the first refusal, and full (unavailable, HTTP 503)
// as soon as publishes are refused, although the stream never reaches 100 % of its budget.
// Once the database is back and the buffer has drained, it is ok again.
func TestReadyzBufferFull(t *testing.T) {
	cfg, proxy := proxiedConfig(t)
	cfg.NATS.MaxBytes = 1 << 20
	site := sitetest.Start(t, cfg)
	v5 := mqtttest.Connect5(t, site.MQTTAddr, "readyz-v5")
	note := strings.Repeat("x", 4000)
	proxy.Cut()

	nearFull := false
	for seq := 1; ; seq++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		pr, err := v5.Publish(ctx, &paho5.Publish{Topic: "sensors/readyz/up", QoS: 1,
			Payload: fmt.Appendf(nil, `{"seq":%d,"note":%q}`, seq, note)})
		cancel()
		if err != nil && pr == nil {
			t.Fatalf("publish %d: %v", seq, err)
		}
		if pr.ReasonCode == 0x97 {
			break
		}
		if seq > 2000 {
			t.Fatal("2000 publishes of 4 kB accepted into a 1 MiB budget")
		}
		code, r := readyz(t, site.HTTPAddr)
		switch r.Buffer {
		case "ok":
			if nearFull {
				t.Fatalf("publish %d: buffer ok after it was near full", seq)
			}
		case "near_full":
			nearFull = true
			if code != http.StatusOK || r.Status != "degraded" {
				t.Fatalf("near full: HTTP %d status %q, want 200 degraded", code, r.Status)
			}
		default:
			t.Fatalf("publish %d accepted, but /readyz says buffer %q (%v)", seq, r.Buffer, r.Errors)
		}
	}
	if !nearFull {
		t.Error("/readyz never said near_full before the buffer refused publishes")
	}
	code, r := readyz(t, site.HTTPAddr)
	if code != http.StatusServiceUnavailable || r.Status != "unavailable" || r.Buffer != "full" {
		t.Fatalf("while refusing: HTTP %d %+v, want 503 unavailable with buffer full", code, r)
	}

	proxy.Restore()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, r = readyz(t, site.HTTPAddr)
		if r.Buffer == "ok" && r.Status == "ready" && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("60s after the database came back: HTTP %d %+v", code, r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
