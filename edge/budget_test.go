package edge_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/internal/metrictest"
	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/internal/sitetest"
	"github.com/sluice-iot/sluice/internal/tcpproxy"
)

// proxiedConfig is a test site whose first target reaches PostgreSQL through a cuttable proxy.
func proxiedConfig(t *testing.T) (edge.Config, *tcpproxy.Proxy) {
	u, err := url.Parse(pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := tcpproxy.Start(t, u.Host)
	cfg := sitetest.Config(t)
	u.Host = proxy.Addr
	cfg.Sink.Targets[0].DatabaseURL = u.String()
	cfg.Sink.Targets[0].RetryMax = 200 * time.Millisecond
	return cfg, proxy
}

// A 1 MiB budget and a dead database: once the buffer is full, MQTT 5 publishes get PUBACK
// 0x97 (quota exceeded) and MQTT 3.1.1 publishes get no PUBACK; once the database is back and
// the buffer has drained, publishes are accepted again; every acknowledged reading is stored
// exactly once.
func TestDiskBudgetRefusesThenRecovers(t *testing.T) {
	cfg, proxy := proxiedConfig(t)
	cfg.NATS.MaxBytes = 1 << 20
	site := sitetest.Start(t, cfg)
	v5 := mqtttest.Connect5(t, site.MQTTAddr, "budget-v5")
	v3 := mqtttest.Connect(t, site.MQTTAddr, "budget-v3")
	defer v3.Disconnect(100)

	note := strings.Repeat("x", 4000) // a bulky uplink: the budget fills after ~250 of them
	seq := 0
	payload := func() []byte {
		seq++
		return fmt.Appendf(nil, `{"seq":%d,"time":%d,"note":%q}`, seq, 1_700_000_000_000+seq, note)
	}
	pub5 := func() (byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pr, err := v5.Publish(ctx, &paho5.Publish{Topic: "sensors/budget/up", QoS: 1, Payload: payload()})
		if pr == nil {
			return 0, err
		}
		return pr.ReasonCode, nil
	}

	proxy.Cut()
	acked := 0
	for {
		code, err := pub5()
		if err != nil {
			t.Fatalf("publish %d: %v", seq, err)
		}
		if code == 0x97 {
			break
		}
		if code != 0 {
			t.Fatalf("publish %d: PUBACK reason %#x, want 0 or 0x97", seq, code)
		}
		acked++
		if acked > 2000 {
			t.Fatal("2000 publishes of 4 kB accepted into a 1 MiB budget")
		}
	}
	t.Logf("budget full after %d acknowledged publishes", acked)
	refusedV5 := seq

	tok := v3.Publish("sensors/budget/up", 1, false, payload())
	if tok.WaitTimeout(3 * time.Second) {
		t.Fatalf("MQTT 3.1.1 publish into a full buffer was acknowledged (err %v)", tok.Error())
	}
	st := getJSON[edge.Status](t, site.HTTPAddr, "/status")
	if st.Buffer.UsedRatio < 0.9 || st.Buffer.MaxBytes != 1<<20 || len(st.Targets) != 1 ||
		st.Targets[0].State != "degraded" || st.Targets[0].LagMessages != uint64(acked) || st.Targets[0].OldestAgeSeconds <= 0 {
		t.Fatalf("status while full: got %+v, want used ≥ 90%% of 1 MiB, target degraded with lag %d", st, acked)
	}
	if got := pgtest.Count(t, site.Schema, "SELECT count(*) FROM readings"); got != 0 {
		t.Fatalf("%d readings stored while the database was cut", got)
	}

	proxy.Restore()
	if n := waitCountIn(t, site.Schema, int64(acked)); n != int64(acked) {
		t.Fatalf("after recovery: got %d readings, want %d", n, acked)
	}
	var code byte
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var err error
		if code, err = pub5(); err != nil {
			t.Fatalf("publish after recovery: %v", err)
		}
		if code == 0 {
			acked++
			break
		}
	}
	if code != 0 {
		t.Fatalf("publishes still refused (reason %#x) 30s after the buffer drained", code)
	}
	tok = v3.Publish("sensors/budget/up", 1, false, payload())
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT 3.1.1 publish after recovery not acknowledged: %v", tok.Error())
	}
	acked++
	if n := waitCountIn(t, site.Schema, int64(acked)); n != int64(acked) {
		t.Fatalf("readings: got %d, want %d (every acknowledged publish)", n, acked)
	}
	if n := pgtest.Count(t, site.Schema, "SELECT count(DISTINCT value) FROM readings WHERE metric = 'seq'"); n != int64(acked) {
		t.Fatalf("distinct seq: got %d, want %d", n, acked)
	}
	if n := pgtest.Count(t, site.Schema, "SELECT count(*) FROM readings WHERE value = $1 OR value = $2", refusedV5, refusedV5+1); n != 0 {
		t.Fatalf("a refused publish was stored")
	}
	if n := metrictest.Value(t, site.Registry(), "sluice_buffer_reclaimed_messages_total", "", ""); n == 0 {
		t.Fatal("sluice_buffer_reclaimed_messages_total is 0: the room came from elsewhere than committed history")
	}
	refused := metrictest.Value(t, site.Registry(), "sluice_ingest_refused_total", "reason", "full")
	if refused < 2 {
		t.Fatalf("sluice_ingest_refused_total{reason=full}: got %v, want at least 2", refused)
	}
}
