package sink

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/internal/pgtest"
)

// countingWriter is a writer of a migrated schema of its own whose fallbacks are counted.
func countingWriter(t *testing.T) (*writer, TargetConfig, prometheus.Counter) {
	t.Helper()
	cfg := storageTarget(t)
	pool := testPool(t, cfg)
	migrateOK(t, pool, cfg)
	w := newWriter(pool, cfg.Schema, cfg.Storage)
	w.fallbacks = prometheus.NewCounter(prometheus.CounterOpts{Name: "fallbacks"})
	return w, cfg, w.fallbacks
}

// counterValue is c's value.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// feedRows is n readings of 3 devices × 2 metrics, of the standard class (acme) and the free
// class (demo), one second apart per series from t0.
func feedRows(t0 time.Time, from, n int) []row {
	rows := make([]row, 0, n)
	for i := from; i < from+n; i++ {
		tenant := "acme"
		if i%3 == 0 {
			tenant = "demo"
		}
		rows = append(rows, row{key: seriesKey{tenant, fmt.Sprintf("dev-%d", i%3), [2]string{"temp", "rh"}[i%2]}, unit: "u",
			time: t0.Add(time.Duration(i/6) * time.Second), value: float64(i)})
	}
	return rows
}

// latestOf returns latest's time and value of one series.
func latestOf(t *testing.T, schema, tenant, device, metric string) (time.Time, float64) {
	t.Helper()
	var at time.Time
	var v float64
	err := pgtest.Connect(t, schema).QueryRow(context.Background(),
		"SELECT time, value FROM readings_latest WHERE tenant = $1 AND device = $2 AND metric = $3", tenant, device, metric).Scan(&at, &v)
	if err != nil {
		t.Fatalf("latest of %s/%s/%s: %v", tenant, device, metric, err)
	}
	return at, v
}

// A redelivered batch (every row stored) and a batch half stored, half new: the direct copy
// meets the stored rows, the batch is merged again, nothing is duplicated, the new rows and
// latest are stored, and the fallback is counted.
func TestWriterRedelivery(t *testing.T) {
	w, cfg, fallbacks := countingWriter(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	text := row{key: seriesKey{"acme", "dev-1", "state"}, time: t0, text: "idle", kind: kindText}

	first := append(feedRows(t0, 0, 600), text)
	inv := &inventory{}
	inv.note(&sluice.Uplink{Tenant: "acme", Device: "dev-1", ReceivedAt: t0, Decoder: "json"})
	if n, err := w.writeWith(ctx, first, inv); err != nil || n != 601 {
		t.Fatalf("first write = %d, %v; want 601 new rows", n, err)
	}
	if got := counterValue(t, fallbacks); got != 0 {
		t.Errorf("fallbacks after a new batch = %v, want 0", got)
	}

	if n, err := w.write(ctx, append(feedRows(t0, 0, 600), text)); err != nil || n != 0 {
		t.Fatalf("redelivered batch = %d, %v; want 0 new rows", n, err)
	}
	if got := counterValue(t, fallbacks); got != 1 {
		t.Errorf("fallbacks after a redelivered batch = %v, want 1", got)
	}

	half := feedRows(t0, 300, 600) // rows 300–599 stored, 600–899 new
	if n, err := w.write(ctx, half); err != nil || n != 300 {
		t.Fatalf("half-new batch = %d, %v; want 300 new rows", n, err)
	}
	if got := counterValue(t, fallbacks); got != 2 {
		t.Errorf("fallbacks after a half-new batch = %v, want 2", got)
	}

	for table, want := range map[string]int64{"measurements_standard": 600, "measurements_free": 300, "text_standard": 1} {
		if got := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM "+table); got != want {
			t.Errorf("%s: %d rows, want %d", table, got, want)
		}
	}
	if got := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM (SELECT DISTINCT time, tenant, device, metric FROM readings) d"); got != 900 {
		t.Errorf("distinct readings: %d, want 900", got)
	}
	// Row 899 is the newest of demo/dev-2/rh (899 % 3 = 2, 899 % 2 = 1, 899 % 3 != 0: acme).
	if at, v := latestOf(t, cfg.Schema, "acme", "dev-2", "rh"); !at.Equal(t0.Add(149*time.Second)) || v != 899 {
		t.Errorf("latest of acme/dev-2/rh = %v %v, want %v 899", at, v, t0.Add(149*time.Second))
	}
	if at, v := latestOf(t, cfg.Schema, "demo", "dev-0", "temp"); !at.Equal(t0.Add(149*time.Second)) || v != 894 {
		t.Errorf("latest of demo/dev-0/temp = %v %v, want %v 894", at, v, t0.Add(149*time.Second))
	}
	if got := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM devices WHERE device = 'dev-1'"); got != 1 {
		t.Errorf("devices: %d rows for dev-1, want 1", got)
	}
}

// A batch holding one reading twice (a message delivered twice into one batch) stores it
// once, through the merge.
func TestWriterDuplicateInBatch(t *testing.T) {
	w, cfg, fallbacks := countingWriter(t)
	t0 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	r := row{key: seriesKey{"acme", "dev-1", "temp"}, time: t0, value: 1}
	again := r
	again.value = 2
	if n, err := w.write(context.Background(), []row{r, again}); err != nil || n != 1 {
		t.Fatalf("write = %d, %v; want 1 new row", n, err)
	}
	if got := counterValue(t, fallbacks); got != 1 {
		t.Errorf("fallbacks = %v, want 1", got)
	}
	if got := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM readings"); got != 1 {
		t.Errorf("readings: %d rows, want 1", got)
	}
}

// A late batch (older than what is stored, and new) is copied directly, and latest stays at
// the newer readings.
func TestWriterLateBatchKeepsLatest(t *testing.T) {
	w, cfg, fallbacks := countingWriter(t)
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	if _, err := w.write(ctx, feedRows(t0, 600, 60)); err != nil {
		t.Fatal(err)
	}
	if n, err := w.write(ctx, feedRows(t0, 0, 60)); err != nil || n != 60 {
		t.Fatalf("late batch = %d, %v; want 60 new rows", n, err)
	}
	if got := counterValue(t, fallbacks); got != 0 {
		t.Errorf("fallbacks = %v, want 0: a late batch of new rows is copied directly", got)
	}
	if at, v := latestOf(t, cfg.Schema, "acme", "dev-1", "rh"); !at.Equal(t0.Add(109*time.Second)) || v != 655 {
		t.Errorf("latest of acme/dev-1/rh = %v %v, want %v 655 (from the newer batch)", at, v, t0.Add(109*time.Second))
	}
	if got := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM latest WHERE time < $1", t0.Add(100*time.Second)); got != 0 {
		t.Errorf("%d latest rows moved back to the late batch", got)
	}
}

// Two writers (two sink processes on one database) write overlapping batches at the same
// time: no error surfaces and every reading is stored once.
func TestWriterConcurrentOverlap(t *testing.T) {
	w1, cfg, f1 := countingWriter(t)
	w2 := newWriter(testPool(t, cfg), cfg.Schema, cfg.Storage)
	w2.fallbacks = prometheus.NewCounter(prometheus.CounterOpts{Name: "fallbacks"})
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	const rounds, size = 20, 600
	var wg sync.WaitGroup
	errs := make(chan error, 2*rounds)
	for k, w := range []*writer{w1, w2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				// w2's batch i overlaps the second half of w1's batch i and the first of i+1.
				rows := feedRows(t0, i*size+k*size/2, size)
				if k == 1 { // and its rows come in the opposite order
					for a, b := 0, len(rows)-1; a < b; a, b = a+1, b-1 {
						rows[a], rows[b] = rows[b], rows[a]
					}
				}
				if _, err := w.write(ctx, rows); err != nil {
					errs <- fmt.Errorf("writer %d, batch %d: %w", k+1, i, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := int64(rounds*size + size/2)
	if got := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM readings"); got != want {
		t.Errorf("readings: %d rows, want %d", got, want)
	}
	if got := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM (SELECT DISTINCT time, tenant, device, metric FROM readings) d"); got != want {
		t.Errorf("distinct readings: %d, want %d", got, want)
	}
	if got := counterValue(t, f1) + counterValue(t, w2.fallbacks); got == 0 {
		t.Error("no batch fell back to the merge, yet every batch overlapped another")
	}
	if at, v := latestOf(t, cfg.Schema, "acme", "dev-2", "rh"); !at.Equal(t0.Add(time.Duration((rounds*size+size/2-1)/6)*time.Second)) || v != float64(want-1) {
		t.Errorf("latest of acme/dev-2/rh = %v %v, want the last reading %d", at, v, want-1)
	}
}
