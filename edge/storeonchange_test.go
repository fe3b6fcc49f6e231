package edge_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/hooks"
	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/internal/sitetest"
	"github.com/sluice-iot/sluice/internal/socseries"
)

// storeOnChangeConfig is a test site whose deadband (0.5, heartbeat 15 minutes) keeps 84 of
// the first 1,000 readings of the scripted series (internal/socseries), the other 916
// suppressed.
func storeOnChangeConfig(t *testing.T) edge.Config {
	cfg := sitetest.Config(t)
	cfg.StoreOnChange.Metrics = map[string]hooks.Deadband{"temperature": {Absolute: 0.5, Heartbeat: 15 * time.Minute}}
	cfg.StoreOnChange.SnapshotInterval = time.Hour // snapshots at shutdown only: the test decides
	cfg.NATS.Listen = mqtttest.FreeAddr(t)
	return cfg
}

// publishSeries publishes readings from..to-1 of the series with QoS 1, each acknowledged
// before the next, with the reading time in the payload.
func publishSeries(t *testing.T, addr string, from, to int) {
	t.Helper()
	cl := mqtttest.Connect(t, addr, fmt.Sprintf("series-%d", from))
	defer cl.Disconnect(100)
	for i := from; i < to; i++ {
		payload := fmt.Sprintf(`{"temperature":%g,"time":%q}`, socseries.Value(i), socseries.At(i).Format(time.RFC3339))
		if tok := cl.Publish("sensors/dev-1/up", 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("reading %d: not acknowledged: %v", i, tok.Error())
		}
	}
}

// finish publishes a last, unfiltered reading and waits until the sink has stored it: every
// uplink stored before it is then in the database too.
func finish(t *testing.T, site *sitetest.Site) {
	t.Helper()
	cl := mqtttest.Connect(t, site.MQTTAddr, "finish")
	defer cl.Disconnect(100)
	if tok := cl.Publish("sensors/dev-1/up", 1, false, `{"done":1}`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("last message not acknowledged: %v", tok.Error())
	}
	if n := site.WaitRows(t, "SELECT count(*) FROM readings WHERE metric = 'done'", 1, 30*time.Second); n != 1 {
		t.Fatalf("last message: %d rows, want 1", n)
	}
}

func storedTimes(t *testing.T, schema string) []time.Time {
	t.Helper()
	rows, err := pgtest.Connect(t, schema).Query(context.Background(),
		"SELECT time FROM readings WHERE device = 'dev-1' AND metric = 'temperature' ORDER BY time")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []time.Time
	for rows.Next() {
		var at time.Time
		if err := rows.Scan(&at); err != nil {
			t.Fatal(err)
		}
		out = append(out, at.UTC())
	}
	return out
}

// caughtUp waits until the rows kept from readings 0..n-1 are in the database, so that a stop
// abandons no batch (an abandoned batch is redelivered only after the consumer's ack wait).
func caughtUp(t *testing.T, site *sitetest.Site, n int) {
	t.Helper()
	want := int64(len(socseries.KeptAt(min(n, 1000))))
	if got := site.WaitRows(t, "SELECT count(*) FROM readings WHERE metric = 'temperature'", want, 30*time.Second); got != want {
		t.Fatalf("after %d readings: %d rows, want %d", n, got, want)
	}
}

func checkStored(t *testing.T, schema string) {
	t.Helper()
	got, want := storedTimes(t, schema), socseries.KeptAt(1000)
	if !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Fatalf("stored %d temperature rows, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
}

// 1,000 readings, 916 inside the deadband: exactly the 84 expected rows reach PostgreSQL
// (heartbeats included), and every uplink on NATS lists what was suppressed.
func TestStoreOnChangeScriptedSeries(t *testing.T) {
	site := sitetest.Start(t, storeOnChangeConfig(t))
	publishSeries(t, site.MQTTAddr, 0, 1000)
	finish(t, site)
	checkStored(t, site.Schema)

	for label, want := range map[string]float64{"result=suppressed": 916, "result=heartbeat": 33, "result=changed": 50, "result=first": 1} {
		if got := gauge(t, site.Registry(), "sluice_filter_readings_total", label); got != want {
			t.Errorf("sluice_filter_readings_total{%s}: got %v, want %v", label, got, want)
		}
	}
	if got := gauge(t, site.Registry(), "sluice_filter_series", ""); got != 1 {
		t.Errorf("sluice_filter_series: got %v, want 1", got)
	}

	// Backends that want every value still have it: the suppressed readings are on NATS.
	kept, supp := 0, 0
	for _, u := range streamUplinks(t, site.Config.NATS.Listen, site.Config.NATS.Stream) {
		for _, r := range u.Readings {
			if r.Metric == "temperature" {
				kept++
			}
		}
		for _, r := range u.Suppressed {
			if r.Metric != "temperature" || len(u.Readings) != 0 {
				t.Fatalf("uplink %s: suppressed %+v beside kept %+v; want only temperature, kept or suppressed", u.ID, r, u.Readings)
			}
			supp++
		}
	}
	if kept != 84 || supp != 916 {
		t.Fatalf("on NATS: %d kept and %d suppressed temperature readings, want 84 and 916", kept, supp)
	}
}

// streamUplinks reads every uplink in the stream through the embedded server's client port.
func streamUplinks(t *testing.T, addr, stream string) []*sluice.Uplink {
	t.Helper()
	js := jetStream(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{sluice.UplinkPrefix + ">"}})
	if err != nil {
		t.Fatal(err)
	}
	var out []*sluice.Uplink
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatalf("read stream: %v", err)
		}
		u, err := sluice.DecodeUplink(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
		if meta, err := msg.Metadata(); err != nil || meta.NumPending == 0 {
			return out
		}
	}
}

// The site stops in the middle of the series and starts again on the same data dir: the
// rows are the same as without the restart — no reading kept twice, no heartbeat missed. A
// third start simulates a crash: the snapshot is replaced by an older one (as if the site had
// died before writing a newer one), and the uplinks stored since are replayed from the buffer.
func TestStoreOnChangeRestartAndCrash(t *testing.T) {
	cfg := storeOnChangeConfig(t)
	state := filepath.Join(cfg.DataDir, hooks.StateFile)

	site := sitetest.Start(t, cfg)
	publishSeries(t, site.MQTTAddr, 0, 300)
	caughtUp(t, site, 300)
	site.Stop(t)
	old, err := os.ReadFile(state)
	if err != nil {
		t.Fatalf("no state snapshot after a graceful stop: %v", err)
	}

	site = sitetest.Start(t, cfg) // restart
	publishSeries(t, site.MQTTAddr, 300, 600)
	if got := gauge(t, site.Registry(), "sluice_filter_readings_total", "result=first"); got != 0 {
		t.Fatalf("after a restart %v readings were kept as the first of their series, want 0", got)
	}
	caughtUp(t, site, 600)
	site.Stop(t)

	if err := os.WriteFile(state, old, 0o600); err != nil { // the crash: the newer snapshot is lost
		t.Fatal(err)
	}
	site = sitetest.Start(t, cfg)
	if got := gauge(t, site.Registry(), "sluice_filter_replayed_uplinks_total", ""); got < 300 {
		t.Fatalf("sluice_filter_replayed_uplinks_total: got %v, want at least the 300 uplinks stored after the snapshot", got)
	}
	publishSeries(t, site.MQTTAddr, 600, 1000)
	finish(t, site)
	checkStored(t, site.Schema)
	if got := gauge(t, site.Registry(), "sluice_filter_readings_total", "result=first"); got != 0 {
		t.Fatalf("after the crash %v readings were kept as the first of their series, want 0", got)
	}
}
