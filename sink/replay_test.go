package sink_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/decoders"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/sink"
)

func newTarget(t *testing.T, buf *sink.Buffer, cfg sink.TargetConfig) *sink.Target {
	t.Helper()
	tg, err := sink.NewTarget(cfg, buf, testLog(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

// sameReadings fails t unless schemas a and b hold the same readings.
func sameReadings(t *testing.T, a, b string) {
	t.Helper()
	q := fmt.Sprintf(`SELECT count(*) FROM (
		(SELECT time, tenant, device, metric, value FROM %[1]s.readings EXCEPT ALL SELECT time, tenant, device, metric, value FROM %[2]s.readings)
		UNION ALL
		(SELECT time, tenant, device, metric, value FROM %[2]s.readings EXCEPT ALL SELECT time, tenant, device, metric, value FROM %[1]s.readings)) d`, a, b)
	if n := pgtest.Count(t, "", q); n != 0 {
		t.Fatalf("schemas %s and %s differ by %d readings", a, b, n)
	}
}

// A replay cancelled halfway and started again ends with the target identical to a clean
// replay; running it once more changes nothing.
func TestReplayCancelResume(t *testing.T) {
	buf := openBuffer(t, nil)
	at := time.Now().UTC().Truncate(time.Second).Add(-2 * time.Hour)
	const uplinks, perUplink = 2000, 5
	for i := range uplinks {
		publish(t, buf, uplink(fmt.Sprintf("r%05d", i), fmt.Sprintf("dev-%d", i%20), at.Add(time.Duration(i)*time.Second), 1, 2, 3, 4, float64(i)))
	}
	all := sink.ReplayOptions{All: true}

	clean := targetConfig(t, "clean")
	clean.BatchRows = 500
	p, err := newTarget(t, buf, clean).Replay(context.Background(), all)
	if err != nil || !p.Done || p.Rows != uplinks*perUplink || p.Messages != uplinks {
		t.Fatalf("clean replay: got %+v, %v; want done with %d rows from %d messages", p, err, uplinks*perUplink, uplinks)
	}

	cfg := targetConfig(t, "resumed")
	cfg.BatchRows = 500
	ctx, cancel := context.WithCancel(context.Background())
	o := all
	o.Progress = func(p sink.ReplayProgress) {
		if p.Fraction >= 0.5 {
			cancel()
		}
	}
	p, err = newTarget(t, buf, cfg).Replay(ctx, o)
	if !errors.Is(err, context.Canceled) || p.Done {
		t.Fatalf("cancelled replay: got %+v, %v; want context.Canceled", p, err)
	}
	half := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM readings")
	if half == 0 || half >= uplinks*perUplink {
		t.Fatalf("after cancel: %d readings, want some but not all %d", half, uplinks*perUplink)
	}

	p, err = newTarget(t, buf, cfg).Replay(context.Background(), all) // a new process, same options
	if err != nil || !p.Done || !p.Resumed {
		t.Fatalf("resumed replay: got %+v, %v; want done and resumed", p, err)
	}
	if p.Messages >= uplinks {
		t.Errorf("resumed replay handled %d messages: it started over instead of resuming", p.Messages)
	}
	sameReadings(t, clean.Schema, cfg.Schema)
	if n := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM readings"); n != uplinks*perUplink {
		t.Fatalf("readings: got %d, want %d", n, uplinks*perUplink)
	}

	p, err = newTarget(t, buf, cfg).Replay(context.Background(), all)
	if err != nil || p.Resumed || p.Rows != 0 || p.Messages != uplinks {
		t.Fatalf("repeated replay: got %+v, %v; want a fresh run over %d messages adding no row", p, err, uplinks)
	}
	sameReadings(t, clean.Schema, cfg.Schema)
}

// --since/--until select by when the buffer stored a message; --errors decodes stored
// failures again and writes those that now decode.
func TestReplayWindowAndErrors(t *testing.T) {
	buf := openBuffer(t, nil)
	at := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	for i := range 10 {
		publish(t, buf, uplink(fmt.Sprintf("early%d", i), "dev", at.Add(time.Duration(i)*time.Second), 1))
	}
	since := instant()
	for i := range 7 {
		publish(t, buf, uplink(fmt.Sprintf("late%d", i), "dev", at.Add(time.Hour/2+time.Duration(i)*time.Second), 1))
	}
	until := instant()
	publish(t, buf, uplink("after", "dev", at.Add(-time.Minute), 1))

	cfg := targetConfig(t, "window")
	p, err := newTarget(t, buf, cfg).Replay(context.Background(), sink.ReplayOptions{Since: since, Until: until})
	if err != nil || !p.Done || p.Messages != 7 {
		t.Fatalf("window replay: got %+v, %v; want 7 messages", p, err)
	}
	if n := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM readings"); n != 7 {
		t.Fatalf("window replay: got %d readings, want 7", n)
	}

	// Failures as ingest stores them: one that the json decoder reads now, one it never will.
	for i, payload := range []string{fmt.Sprintf(`{"temp":21.5,"time":%q}`, at.Format(time.RFC3339)), `not json`} {
		f := &sluice.Failure{ID: fmt.Sprintf("f%d", i), Tenant: "t1", Device: "dev-err", Topic: "sensors/dev-err/up",
			ReceivedAt: at, Decoder: "json", Reason: "decode", Error: "was broken", Payload: []byte(payload)}
		data, err := sluice.EncodeFailure(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := buf.Publish(context.Background(), sluice.ErrorSubject(f.Tenant, f.Device), f.ID, data, true); err != nil {
			t.Fatal(err)
		}
	}
	set := decoders.NewSet()
	redecode := func(ctx context.Context, f *sluice.Failure) (*sluice.Uplink, error) {
		d, ok := set.Lookup(f.Decoder)
		if !ok {
			return nil, fmt.Errorf("unknown decoder %q", f.Decoder)
		}
		out, err := d.Decode(ctx, &decoders.Input{Bytes: f.Payload, RecvTime: f.ReceivedAt, Tenant: f.Tenant, Device: f.Device})
		if err != nil {
			return nil, err
		}
		return &sluice.Uplink{V: sluice.WireVersion, ID: f.ID, Tenant: f.Tenant, Device: f.Device, Readings: out.Readings}, nil
	}
	p, err = newTarget(t, buf, cfg).Replay(context.Background(), sink.ReplayOptions{All: true, Errors: true, Redecode: redecode})
	if err != nil || !p.Done || p.Messages != 2 || p.Failed != 1 || p.Rows != 1 {
		t.Fatalf("errors replay: got %+v, %v; want 2 messages, 1 still failing, 1 row", p, err)
	}
	if n := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM readings WHERE device = 'dev-err' AND metric = 'temp' AND value = 21.5"); n != 1 {
		t.Fatalf("re-decoded reading: got %d, want 1", n)
	}
}
