package sink_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/internal/metrictest"
	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/internal/tcpproxy"
	"github.com/sluice-iot/sluice/sink"
)

// With when_full: drop_oldest, a full buffer takes new messages by evicting the oldest, and the
// target counts every evicted message it had not received: stored plus lost is exactly what was
// published.
func TestDropOldestCountsWhatItDrops(t *testing.T) {
	buf := openBuffer(t, func(c *sink.BufferConfig) { c.MaxBytes = 1 << 20; c.WhenFull = sink.WhenFullDropOldest })
	u, err := url.Parse(pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := tcpproxy.Start(t, u.Host)
	u.Host = proxy.Addr
	cfg := targetConfig(t, "fresh")
	cfg.DatabaseURL = u.String()
	cfg.BatchRows = 10 // fetches ahead at most 20 messages: the rest wait in the buffer
	reg := prometheus.NewRegistry()
	tg := startTarget(t, buf, cfg, reg)

	note := strings.Repeat("x", 4000)
	at := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	published := 0
	pub := func(n int) {
		for range n {
			up := uplink(fmt.Sprintf("d%05d", published), "dev", at.Add(time.Duration(published)*time.Second), float64(published))
			up.Data = map[string]any{"note": note}
			publish(t, buf, up) // never refused: the oldest make room
			published++
		}
	}
	pub(10)
	if n := waitCount(t, cfg.Schema, "SELECT count(*) FROM readings", 10, 30*time.Second); n != 10 {
		t.Fatalf("before the outage: got %d readings, want 10", n)
	}
	proxy.Cut()
	pub(600) // about 2.4 MB into a 1 MiB budget
	proxy.Restore()
	var r sink.TargetStatus
	mqtttest.WaitFor(t, 60*time.Second, "the target to drain and count its losses", func() bool {
		r = tg.Report(context.Background())
		return r.LagMessages == 0 && r.Lost > 0 && r.State == sink.StateOK
	})
	stored := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM readings")
	t.Logf("published %d, stored %d, counted lost %d", published, stored, r.Lost)
	if stored >= int64(published) {
		t.Fatalf("stored %d of %d: nothing was evicted from a 1 MiB budget", stored, published)
	}
	if stored+r.Lost != int64(published) {
		t.Fatalf("stored %d + lost %d != published %d: evictions miscounted", stored, r.Lost, published)
	}
	if got := metrictest.Value(t, reg, "sluice_sink_lost_messages_total", "", ""); got != float64(r.Lost) {
		t.Fatalf("sluice_sink_lost_messages_total: got %v, want %d", got, r.Lost)
	}
}

// A target new to the buffer starts where its start says; one that exists keeps its place.
func TestTargetStartPoints(t *testing.T) {
	buf := openBuffer(t, nil)
	at := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	n := 0
	pub := func(k int) {
		for range k {
			publish(t, buf, uplink(fmt.Sprintf("s%03d", n), "dev", at.Add(time.Duration(n)*time.Second), float64(n)))
			n++
		}
	}
	pub(10)
	// The first ten were stored (their acks are in) at or before mid, the next ten after it:
	// the clock has moved past mid before they are published.
	mid := instant().UTC()
	pub(10)

	all := targetConfig(t, "all_history")
	since := targetConfig(t, "since_mid")
	since.Start = mid.Format(time.RFC3339Nano)
	fresh := targetConfig(t, "only_new")
	fresh.Start = sink.StartNew
	ra := startTarget(t, buf, all, nil)
	rs := startTarget(t, buf, since, nil)
	f := startTarget(t, buf, fresh, nil)
	mqtttest.WaitFor(t, 30*time.Second, "the new target to consume", func() bool {
		return f.Report(context.Background()).State == sink.StateOK
	})
	pub(5)
	f.stop()
	pub(3) // stored while only_new is down: it must get them when it comes back
	rf := startTarget(t, buf, fresh, nil)

	for _, c := range []struct {
		cfg  sink.TargetConfig
		r    *running
		want int64
	}{{all, ra, 28}, {since, rs, 18}, {fresh, rf, 8}} {
		// Nothing pending and nothing delivered unacknowledged (an ack wait could redeliver
		// it): every uplink the consumer will ever get is committed, so the count is final.
		mqtttest.WaitFor(t, 30*time.Second, c.cfg.Name+" to commit all it is due", func() bool {
			r := c.r.Report(context.Background())
			return r.State == sink.StateOK && r.LagMessages == 0
		})
		if got := pgtest.Count(t, c.cfg.Schema, "SELECT count(*) FROM readings"); got != c.want {
			t.Errorf("target %s (start %s): got %d readings, want %d", c.cfg.Name, c.cfg.Start, got, c.want)
		}
	}
}

// The buffer is full (when_full: refuse) of uplinks a cut target has not committed; a healthy
// target still records the bad row it meets (dead letters have a budget of their own) and
// writes everything else: one target down never stalls another.
func TestFullBufferDoesNotStallHealthyTarget(t *testing.T) {
	buf := openBuffer(t, func(c *sink.BufferConfig) { c.MaxBytes = 1 << 20 })
	u, err := url.Parse(pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := tcpproxy.Start(t, u.Host)
	u.Host = proxy.Addr
	down := targetConfig(t, "down")
	down.DatabaseURL = u.String()
	d := startTarget(t, buf, down, nil)
	healthy := targetConfig(t, "healthy")
	h := startTarget(t, buf, healthy, nil)
	mqtttest.WaitFor(t, 30*time.Second, "both targets to consume", func() bool {
		return d.Report(context.Background()).State == sink.StateOK && h.Report(context.Background()).State == sink.StateOK
	})
	h.stop()
	proxy.Cut()

	at := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	bad := uplink("bad", "dev", at, 1)
	bad.Readings[0].Time = at.Add(100 * 24 * time.Hour)
	publish(t, buf, bad)
	note := strings.Repeat("x", 4000)
	good := 0
	for ; ; good++ {
		up := uplink(fmt.Sprintf("g%04d", good), "dev", at.Add(time.Duration(good)*time.Second), float64(good))
		up.Data = map[string]any{"note": note}
		data, err := sluice.EncodeUplink(up)
		if err != nil {
			t.Fatal(err)
		}
		err = buf.Publish(context.Background(), sluice.UplinkSubject(up.Tenant, up.Device), up.ID, data, true)
		if errors.Is(err, sluice.ErrBufferFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if good > 1000 {
			t.Fatal("1000 uplinks of 4 kB accepted into a 1 MiB budget")
		}
	}

	h = startTarget(t, buf, healthy, nil)
	if n := waitCount(t, healthy.Schema, "SELECT count(*) FROM readings", int64(good), 30*time.Second); n != int64(good) {
		t.Fatalf("healthy target: got %d readings, want %d", n, good)
	}
	dls := deadLetters(t, buf, "healthy")
	if len(dls) != 1 || dls[0].UplinkID != "bad" || !strings.Contains(dls[0].Error, "in the future") {
		t.Fatalf("dead letters: got %+v, want the bad row", dls)
	}
	// The bad row needs no database to be refused: the cut target has dead-lettered it, and
	// has acknowledged it too when it fetched it alone, before the good ones were published
	// (it depends on scheduling); otherwise it is still behind with them.
	r := d.Report(context.Background())
	behind := r.LagMessages == uint64(good)+1 || r.LagMessages == uint64(good) && r.DeadLetters == 1
	if r.State != sink.StateDegraded || !behind {
		t.Fatalf("cut target: got %+v, want degraded with %d messages behind (%d when it dead-lettered the bad one)", r, good+1, good)
	}
}
