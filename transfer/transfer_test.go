package transfer_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/sink"
	"github.com/sluice-iot/sluice/transfer"
)

var t0 = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

func testLog() zerolog.Logger {
	return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.ErrorLevel)
}

// writer is a migrated target in a fresh schema of db.
func writer(t *testing.T, db pgtest.DB, edit func(*sink.TargetConfig)) *sink.Writer {
	t.Helper()
	cfg := sink.DefaultTargetConfig()
	cfg.DatabaseURL, cfg.Schema = db.URL, db.Schema(t)
	cfg.Limits.MaxPast = 0
	if edit != nil {
		edit(&cfg)
	}
	w, err := sink.NewWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if _, err := w.Migrate(context.Background(), testLog()); err != nil {
		t.Fatal(err)
	}
	return w
}

// seed writes n readings: 3 tenants × 4 devices × 2 metrics, one every 10 s per series.
func seed(t *testing.T, w *sink.Writer, n int) {
	t.Helper()
	var rows []sink.Row
	for i := range n {
		s := i % 24
		rows = append(rows, sink.Row{
			Time:   t0.Add(time.Duration(i/24) * 10 * time.Second),
			Tenant: fmt.Sprintf("t%d", s%3), Device: fmt.Sprintf("dev-%d", s/3%4), Metric: []string{"temp", "hum"}[s/12],
			Unit: "x", Value: math.Sin(float64(i)) * 100,
		})
		if len(rows) == 10000 || i == n-1 {
			if _, err := w.Write(context.Background(), rows, nil); err != nil {
				t.Fatal(err)
			}
			rows = rows[:0]
		}
	}
}

func source(t *testing.T, cfg transfer.SourceConfig) *transfer.Source {
	t.Helper()
	s, err := transfer.OpenSource(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func sourceOf(t *testing.T, w *sink.Writer) *transfer.Source {
	return source(t, transfer.SourceConfig{URL: w.Config().DatabaseURL, Schema: w.Config().Schema})
}

func verify(t *testing.T, a, b *transfer.Source, by string) (transfer.VerifyReport, []transfer.Difference) {
	t.Helper()
	var diffs []transfer.Difference
	rep, err := transfer.Verify(context.Background(), a, b, transfer.VerifyConfig{By: by}, func(d transfer.Difference) { diffs = append(diffs, d) })
	if err != nil {
		t.Fatal(err)
	}
	return rep, diffs
}

// A copy between two databases verifies equal; after one row is deleted and one value changed
// on the destination, verify names exactly those two buckets with both sides' figures.
func TestVerifyNamesADeletedAndAChangedRow(t *testing.T) {
	db := pgtest.Default()
	other := db.Database(t, "")
	src := writer(t, db, nil)
	seed(t, src, 24*720) // two hours per series
	dst := writer(t, other, nil)
	rep, err := transfer.Backfill(context.Background(), sourceOf(t, src), dst, transfer.BackfillConfig{Chunk: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Read != 24*720 || rep.New != 24*720 || rep.Rejected != 0 {
		t.Fatalf("backfill: read %d, new %d, rejected %d; want %d, %d, 0", rep.Read, rep.New, rep.Rejected, 24*720, 24*720)
	}
	a, b := sourceOf(t, src), sourceOf(t, dst)
	for _, by := range []string{"hour", "day"} {
		if vr, diffs := verify(t, a, b, by); !vr.Equal() || vr.FromRows != 24*720 || vr.ToRows != 24*720 {
			t.Fatalf("verify by %s after the copy: %+v %+v", by, vr, diffs)
		}
	}
	if vr, _ := verify(t, a, b, "hour"); vr.Buckets != 48 {
		t.Errorf("buckets by hour: got %d, want 48 (24 series × 2 hours)", vr.Buckets)
	}

	q := func(sql string) {
		other.Query(t, dst.Config().Schema, func(c *pgx.Conn) error { _, err := c.Exec(context.Background(), sql); return err })
	}
	q(`DELETE FROM measurements_standard WHERE time = '2025-03-01T00:30:00Z' AND series_id = (SELECT id FROM series WHERE tenant = 't1' AND device = 'dev-2' AND metric = 'hum')`)
	q(`UPDATE measurements_standard SET value = value + 0.001 WHERE time = '2025-03-01T01:10:00Z' AND series_id = (SELECT id FROM series WHERE tenant = 't0' AND device = 'dev-0' AND metric = 'temp')`)
	vr, diffs := verify(t, a, b, "hour")
	if vr.Equal() || vr.Differ != 2 || vr.OnlyFrom != 0 || vr.OnlyTo != 0 || len(diffs) != 2 {
		t.Fatalf("verify: %+v, differences %+v; want 2 differing buckets", vr, diffs)
	}
	got := []string{}
	for _, d := range diffs {
		got = append(got, fmt.Sprintf("%s/%s/%s %s count %d/%d sum-diff %.4f", d.Tenant, d.Device, d.Metric, d.Bucket.Format("15:04"),
			d.From.Count, d.To.Count, d.To.Sum-d.From.Sum))
	}
	want := []string{
		"t0/dev-0/temp 01:00 count 360/360 sum-diff 0.0010",
		"t1/dev-2/hum 00:00 count 360/359 sum-diff " + fmt.Sprintf("%.4f", diffs[1].To.Sum-diffs[1].From.Sum),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("differences:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A backfill cancelled after a few chunks and run again copies every row exactly once: the
// checkpoint's counts equal the source's rows, and the copy verifies equal.
func TestBackfillResumesWhereItStopped(t *testing.T) {
	db := pgtest.Default()
	src := writer(t, db, nil)
	seed(t, src, 30000)
	dst := writer(t, db, nil)
	cancelledBackfill(t, src, dst, 7)
	mid := pgtest.Count(t, dst.Config().Schema, "SELECT count(*) FROM readings")
	if mid < 7000 || mid >= 30000 {
		t.Fatalf("rows after the cancel: %d, want some but not all", mid)
	}
	rep, err := transfer.Backfill(context.Background(), sourceOf(t, src), dst, transfer.BackfillConfig{Chunk: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Resumed || rep.Read != 30000 || rep.New != 30000 || rep.RunRows != 30000-mid {
		t.Fatalf("resumed backfill: resumed %v, read %d, new %d, this run %d; want true, 30000, 30000, %d", rep.Resumed, rep.Read, rep.New, rep.RunRows, 30000-mid)
	}
	if vr, diffs := verify(t, sourceOf(t, src), sourceOf(t, dst), "hour"); !vr.Equal() {
		t.Fatalf("verify: %+v %+v", vr, diffs)
	}
	again, err := transfer.Backfill(context.Background(), sourceOf(t, src), dst, transfer.BackfillConfig{Chunk: 1000})
	if err != nil || !again.AlreadyDone || again.RunRows != 0 {
		t.Fatalf("third run: %+v, %v; want already done, nothing read", again, err)
	}
}

// A legacy table in a SQL_ASCII database, with a few rows no database should keep, is copied
// with --from-query: the good rows arrive, each bad one is in the rejects table with its
// reason, and nothing cancels the chunk it is in.
func TestBackfillLegacyTableRejectsBadRows(t *testing.T) {
	legacy := pgtest.Default().Database(t, "ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
	legacy.Exec(t, `CREATE TABLE history (ts timestamp, site varchar(40), sensor text, kind text, reading numeric, unit text);
INSERT INTO history SELECT '2025-01-01'::timestamp + g * interval '1 minute', 'plant', 's' || (g % 5), 'temp', g / 10.0, 'C'
	FROM generate_series(1, 5000) g;
INSERT INTO history VALUES
	(NULL, 'plant', 's1', 'temp', 1, 'C'),
	('2025-01-02 00:00:30', 'plant', '', 'temp', 2, 'C'),
	('2025-01-02 00:00:31', 'plant', 's1', 'temp', 'NaN', 'C'),
	('2025-01-02 00:00:32', 'plant', E's\xff1', 'temp', 3, 'C'),
	('2025-01-02 00:00:33', 'plant', 's1', 'temp', NULL, 'C'),
	('infinity', 'plant', 's1', 'temp', 4, 'C'),
	('2025-01-02 00:00:34', 'plant', 's1', 'bad' || chr(9) || E'\xc3', 5, 'C')`)
	dst := writer(t, pgtest.Default(), nil)
	src := source(t, transfer.SourceConfig{URL: legacy.URL,
		Query: "SELECT ts AS time, site AS tenant, sensor AS device, kind AS metric, reading AS value, unit FROM history"})
	rep, err := transfer.Backfill(context.Background(), src, dst, transfer.BackfillConfig{Chunk: 700})
	if err != nil {
		t.Fatal(err)
	}
	if rep.New != 5000 || rep.Rejected != 7 || rep.Read != 5006 {
		t.Fatalf("read %d, new %d, rejected %d; want 5006 (the NULL time is not read), 5000, 7", rep.Read, rep.New, rep.Rejected)
	}
	schema := dst.Config().Schema
	if n := pgtest.Count(t, schema, "SELECT count(*) FROM readings WHERE tenant = 'plant' AND unit = 'C'"); n != 5000 {
		t.Errorf("readings: got %d, want 5000", n)
	}
	var got []string
	pgtest.Query(t, schema, func(c *pgx.Conn) error {
		rows, err := c.Query(context.Background(), "SELECT coalesce(device, '∅'), coalesce(metric, '∅'), reason FROM sluice_backfill_rejects ORDER BY reason, device")
		if err != nil {
			return err
		}
		got, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
			var d, m, why string
			err := r.Scan(&d, &m, &why)
			return d + " " + m + ": " + why, err
		})
		return err
	})
	want := []string{
		" temp: device is empty",
		"s\uFFFD1 temp: device is not valid UTF-8",
		"s1 bad\t\uFFFD: metric is not valid UTF-8",
		"s1 temp: time is infinite",
		"s1 temp: time is missing",
		"s1 temp: value is missing",
		"s1 temp: value is not a finite number",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rejects:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Verify against the legacy query names what was not copied: the NaN in s1's hour, and
	// the three series whose only reading was rejected. NULL values and infinite times have no
	// bucket on either side.
	vr, diffs := verify(t, src, sourceOf(t, dst), "hour")
	if vr.Differ != 1 || vr.OnlyFrom != 3 || vr.OnlyTo != 0 || vr.ToRows != 5000 {
		t.Fatalf("verify against the legacy query: %+v %+v", vr, diffs)
	}
	for _, d := range diffs {
		if d.To.Present && (d.Device != "s1" || d.From.Count != d.To.Count+1 || !math.IsNaN(d.From.Sum)) {
			t.Errorf("difference %+v: want s1's hour with one more reading, a NaN, on the legacy side", d)
		}
	}
}

// The source's classes are all read, and the destination's class rules place the rows: the
// copy of a source keeping tenant t2 apart lands where the destination keeps t1 apart.
func TestBackfillAppliesTheDestinationsClasses(t *testing.T) {
	classes := func(name, tenant string) func(*sink.TargetConfig) {
		return func(c *sink.TargetConfig) {
			c.Storage.Classes = append(c.Storage.Classes, sink.ClassConfig{Name: name, ChunkInterval: sink.Period(24 * time.Hour)})
			c.Storage.Assign = []sink.AssignRule{{Tenant: tenant, Class: name}}
		}
	}
	src := writer(t, pgtest.Default(), classes("archive", "t2"))
	seed(t, src, 2400)
	dst := writer(t, pgtest.Default(), classes("short", "t1"))
	if _, err := transfer.Backfill(context.Background(), sourceOf(t, src), dst, transfer.BackfillConfig{Chunk: 500}); err != nil {
		t.Fatal(err)
	}
	if vr, diffs := verify(t, sourceOf(t, src), sourceOf(t, dst), "hour"); !vr.Equal() || vr.ToRows != 2400 {
		t.Fatalf("verify: %+v %+v", vr, diffs)
	}
	s := dst.Config().Schema
	for _, c := range []struct {
		sql  string
		want int64
	}{
		{"SELECT count(*) FROM measurements_short", 800},
		{"SELECT count(*) FROM measurements_standard", 1600},
		{"SELECT count(*) FROM series WHERE class = 'short' AND tenant = 't1'", 8},
	} {
		if got := pgtest.Count(t, s, c.sql); got != c.want {
			t.Errorf("%s: got %d, want %d", c.sql, got, c.want)
		}
	}
}

// A destination named by URL carries only the default class rules: one whose schema has
// other classes is refused, with the way out.
func TestCheckClassRulesRefusesAURLForAClassedSchema(t *testing.T) {
	configured := writer(t, pgtest.Default(), func(c *sink.TargetConfig) {
		c.Storage.Classes = append(c.Storage.Classes, sink.ClassConfig{Name: "short", ChunkInterval: sink.Period(24 * time.Hour)})
	})
	if err := transfer.CheckClassRules(context.Background(), configured); err != nil {
		t.Fatalf("the configured target: %v", err)
	}
	cfg := sink.DefaultTargetConfig()
	cfg.DatabaseURL, cfg.Schema = configured.Config().DatabaseURL, configured.Config().Schema
	byURL, err := sink.NewWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer byURL.Close()
	err = transfer.CheckClassRules(context.Background(), byURL)
	want := "the destination schema " + cfg.Schema + " has the retention classes short besides standard: give --to the name of its target in the configuration (with --config), so that new series follow its class rules"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

// Two processes running the same copy at once never both advance it: whichever loses a race
// for the checkpoint fails with a rolled-back chunk, and the copy ends exact.
func TestConcurrentBackfillsOfOneCopy(t *testing.T) {
	src := writer(t, pgtest.Default(), nil)
	seed(t, src, 20000)
	dst := writer(t, pgtest.Default(), nil)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := transfer.Backfill(context.Background(), sourceOf(t, src), dst, transfer.BackfillConfig{Chunk: 500})
			errs <- err
		}()
	}
	for range 2 {
		err := <-errs
		t.Logf("one of two concurrent runs: %v", err)
		if err != nil && !strings.Contains(err.Error(), "the checkpoint moved under this backfill") {
			t.Errorf("concurrent backfill: %v", err)
		}
	}
	// Whichever failed, the survivor or a rerun finishes the copy.
	rep, err := transfer.Backfill(context.Background(), sourceOf(t, src), dst, transfer.BackfillConfig{Chunk: 500})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Read != 20000 || rep.New != 20000 {
		t.Fatalf("checkpoint: read %d, new %d; want 20000 each", rep.Read, rep.New)
	}
	if vr, diffs := verify(t, sourceOf(t, src), sourceOf(t, dst), "hour"); !vr.Equal() {
		t.Fatalf("verify: %+v %+v", vr, diffs)
	}
}

// --tenant, --since and --until bound both the copy and the comparison.
func TestBackfillAndVerifyOfARange(t *testing.T) {
	src := writer(t, pgtest.Default(), nil)
	seed(t, src, 24*720) // 2025-03-01 00:00 to 02:00, 24 series
	dst := writer(t, pgtest.Default(), nil)
	var r transfer.Range
	r.Tenant, r.Since, r.Until = "t1", t0.Add(30*time.Minute), t0.Add(90*time.Minute)
	rep, err := transfer.Backfill(context.Background(), sourceOf(t, src), dst, transfer.BackfillConfig{Range: r, Chunk: 333})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(8 * 360); rep.Read != want || rep.New != want { // 8 series of t1, an hour of 10 s readings
		t.Fatalf("read %d, new %d; want %d", rep.Read, rep.New, want)
	}
	if n := pgtest.Count(t, dst.Config().Schema, "SELECT count(*) FROM readings WHERE tenant <> 't1' OR time < $1 OR time >= $2", r.Since, r.Until); n != 0 {
		t.Errorf("%d readings outside the range copied", n)
	}
	var diffs []transfer.Difference
	vr, err := transfer.Verify(context.Background(), sourceOf(t, src), sourceOf(t, dst), transfer.VerifyConfig{Range: r, By: "hour"},
		func(d transfer.Difference) { diffs = append(diffs, d) })
	if err != nil || !vr.Equal() || vr.Buckets != 16 {
		t.Fatalf("verify of the range: %+v %v %+v; want equal over 16 series-hours", vr, err, diffs)
	}
	r.Since = t0 // the half hour before was not copied: t1's 8 first hours are short on the destination
	vr, err = transfer.Verify(context.Background(), sourceOf(t, src), sourceOf(t, dst), transfer.VerifyConfig{Range: r, By: "hour"},
		func(transfer.Difference) {})
	if err != nil || vr.Differ != 8 || vr.OnlyFrom != 0 || vr.OnlyTo != 0 {
		t.Fatalf("verify of a wider range: %+v %v; want 8 differing series-hours", vr, err)
	}
}

// cancelledBackfill backfills src into dst in chunks of 1,000 rows and cancels it once chunks
// chunks are done; the backfill must fail.
func cancelledBackfill(t *testing.T, src, dst *sink.Writer, chunks int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	_, err := transfer.Backfill(ctx, sourceOf(t, src), dst, transfer.BackfillConfig{Chunk: 1000, Progress: func(transfer.Progress) {
		if calls++; calls == chunks+1 { // the first call is before any chunk
			cancel()
		}
	}})
	if err == nil {
		t.Fatal("cancelled backfill returned no error")
	}
}
