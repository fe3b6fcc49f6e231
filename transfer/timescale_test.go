package transfer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/sink"
	"github.com/sluice-iot/sluice/transfer"
)

// Into TimescaleDB: history lands in chunks that are already compressed (half of it is there
// already and is skipped), and the continuous aggregates, whose watermark is past the
// history, hold all of it afterwards.
func TestBackfillIntoCompressedTimescaleChunks(t *testing.T) {
	tsdb := pgtest.Timescale(t)
	ctx := context.Background()
	start := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -30)
	history := func(keep func(series int) bool) []sink.Row {
		var rows []sink.Row
		for m := 0; m < 20*24*6; m++ { // 20 days, every 10 minutes
			for s := range 12 {
				if keep(s) {
					rows = append(rows, sink.Row{Time: start.Add(time.Duration(m) * 10 * time.Minute), Tenant: "acme",
						Device: fmt.Sprintf("dev-%d", s), Metric: "temp", Unit: "C", Value: float64(m%97) + float64(s)/10})
				}
			}
		}
		return rows
	}
	write := func(w *sink.Writer, rows []sink.Row) {
		for len(rows) > 0 {
			n := min(len(rows), 10000)
			if _, err := w.Write(ctx, rows[:n], nil); err != nil {
				t.Fatal(err)
			}
			rows = rows[n:]
		}
	}
	src := writer(t, pgtest.Default(), nil)
	all := history(func(int) bool { return true })
	write(src, all)

	dst := writer(t, tsdb, nil)
	schema := dst.Config().Schema
	q := func(sql string) {
		tsdb.Query(t, schema, func(c *pgx.Conn) error { _, err := c.Exec(ctx, sql); return err })
	}
	// The test drives compression and refreshes itself: no policy runs meanwhile.
	q(pauseJobs)
	write(dst, history(func(s int) bool { return s%2 == 0 }))
	write(dst, []sink.Row{{Time: time.Now().Add(-time.Hour), Tenant: "acme", Device: "dev-0", Metric: "temp", Value: 1}})
	q(`SELECT public.compress_chunk(c, if_not_compressed => true) FROM public.show_chunks('measurements_standard', older_than => now() - interval '8 days') c`)
	compressed := tsdb.Count(t, schema, `SELECT count(*) FROM timescaledb_information.chunks
		WHERE hypertable_schema = current_schema() AND hypertable_name = 'measurements_standard' AND is_compressed`)
	if compressed < 15 {
		t.Fatalf("%d compressed chunks, want the 20 days of history compressed", compressed)
	}
	// The refresh policy has run: the aggregates' watermark is past the history.
	for _, c := range []string{"measurements_standard_1h", "measurements_standard_1d"} {
		q(fmt.Sprintf("CALL public.refresh_continuous_aggregate('%s', NULL, NULL)", c))
	}

	rep, err := transfer.Backfill(ctx, sourceOf(t, src), dst, transfer.BackfillConfig{Chunk: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Read != int64(len(all)) || rep.New != int64(len(all)/2) || len(rep.Refreshed) != 2 {
		t.Fatalf("backfill: read %d, new %d, refreshed %v; want %d, %d and both aggregates", rep.Read, rep.New, rep.Refreshed, len(all), len(all)/2)
	}
	end := start.AddDate(0, 0, 20)
	if vr, diffs := verifyRange(t, sourceOf(t, src), sourceOf(t, dst), start, end); !vr.Equal() {
		t.Fatalf("verify: %+v; first differences %+v", vr, diffs[:min(3, len(diffs))])
	}
	for _, v := range []string{"readings_1h", "readings_1d"} {
		got := tsdb.Count(t, schema, "SELECT coalesce(sum(count), 0) FROM "+v+" WHERE bucket >= $1 AND bucket < $2", start, end)
		if got != int64(len(all)) {
			t.Errorf("%s holds %d readings of the history, want %d", v, got, len(all))
		}
	}
}

func verifyRange(t *testing.T, a, b *transfer.Source, since, until time.Time) (transfer.VerifyReport, []transfer.Difference) {
	t.Helper()
	var diffs []transfer.Difference
	cfg := transfer.VerifyConfig{By: "hour"}
	cfg.Since, cfg.Until = since, until
	rep, err := transfer.Verify(context.Background(), a, b, cfg, func(d transfer.Difference) { diffs = append(diffs, d) })
	if err != nil {
		t.Fatal(err)
	}
	return rep, diffs
}

// Typed readings into and out of compressed TimescaleDB chunks: half of the history is at the
// destination already, compressed; the backfill adds the rest, and a copy back out of the
// compressed chunks into plain PostgreSQL verifies equal too.
func TestBackfillTypedReadingsThroughCompressedTimescaleChunks(t *testing.T) {
	const total, first = 20 * 720, 20 * 360
	tsdb := pgtest.Timescale(t)
	ctx := context.Background()
	src := writer(t, pgtest.Default(), nil)
	seedTyped(t, src, total)
	dst := writer(t, tsdb, nil)
	schema := dst.Config().Schema
	q := func(sql string) {
		tsdb.Query(t, schema, func(c *pgx.Conn) error { _, err := c.Exec(ctx, sql); return err })
	}
	q(pauseJobs)
	seedTyped(t, dst, first)
	for _, h := range []string{"measurements_standard", "text_standard", "bool_standard", "location_standard"} {
		q(fmt.Sprintf(`SELECT public.compress_chunk(c, if_not_compressed => true) FROM public.show_chunks('%s') c`, h))
	}
	compressed := tsdb.Count(t, schema, `SELECT count(DISTINCT hypertable_name) FROM timescaledb_information.chunks
		WHERE hypertable_schema = current_schema() AND is_compressed AND hypertable_name IN ('text_standard', 'bool_standard', 'location_standard')`)
	if compressed != 3 {
		t.Fatalf("%d typed hypertables with compressed chunks, want 3", compressed)
	}
	rep, err := transfer.Backfill(ctx, sourceOf(t, src), dst, transfer.BackfillConfig{Chunk: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Read != total || rep.New != total-first || rep.Rejected != 0 {
		t.Fatalf("backfill: read %d, new %d, rejected %d; want %d, %d, 0", rep.Read, rep.New, rep.Rejected, total, total-first)
	}
	if vr, diffs := verifyRange(t, sourceOf(t, src), sourceOf(t, dst), t0, t0.Add(24*time.Hour)); !vr.Equal() || vr.ToRows != total {
		t.Fatalf("verify: %+v; first differences %+v", vr, diffs[:min(3, len(diffs))])
	}
	back := writer(t, pgtest.Default(), nil)
	if rep, err := transfer.Backfill(ctx, sourceOf(t, dst), back, transfer.BackfillConfig{Chunk: 1000}); err != nil || rep.New != total {
		t.Fatalf("backfill out of TimescaleDB: %+v, %v; want %d new", rep, err, total)
	}
	if vr, diffs := verifyRange(t, sourceOf(t, dst), sourceOf(t, back), t0, t0.Add(24*time.Hour)); !vr.Equal() || vr.ToRows != total {
		t.Fatalf("verify of the copy out: %+v; first differences %+v", vr, diffs[:min(3, len(diffs))])
	}
}

// pauseJobs stops the TimescaleDB jobs of the current schema's hypertables and aggregates
// from being scheduled: a test that drives compression and refreshes itself runs no policy
// meanwhile.
const pauseJobs = `SELECT public.alter_job(j.job_id, scheduled => false) FROM timescaledb_information.jobs j
	WHERE j.hypertable_schema = current_schema() OR j.hypertable_name IN (SELECT materialization_hypertable_name
		FROM timescaledb_information.continuous_aggregates WHERE view_schema = current_schema())`
