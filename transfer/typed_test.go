package transfer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/sink"
	"github.com/sluice-iot/sluice/transfer"
)

// typedMetrics are the metrics seedTyped writes for every device: two numbers, a text, a
// boolean and a location.
var typedMetrics = []string{"temp", "hum", "state", "door", "pos"}

// typedRow is reading i of seedTyped: 4 devices × 5 metrics, one every 10 s per series.
func typedRow(i int) sink.Row {
	s := i % 20
	r := sink.Row{Time: t0.Add(time.Duration(i/20) * 10 * time.Second), Tenant: "acme", Device: fmt.Sprintf("dev-%d", s/5),
		Metric: typedMetrics[s%5]}
	switch r.Metric {
	case "temp", "hum":
		r.Unit, r.Value = "C", float64(i%997)/10
	case "state":
		r.Type, r.Text = sluice.TypeText, fmt.Sprintf("state %d ü", i%7)
	case "door":
		r.Type, r.Value = sluice.TypeBool, float64(i/20%3%2)
	case "pos":
		r.Type, r.Location = sluice.TypeLocation, &sluice.Location{Lat: 47 + float64(i%1000)/7000, Lon: 8.5 - float64(i%300)/3000}
		if i%2 == 0 {
			alt := float64(400 + i%50)
			r.Location.Alt = &alt
		}
	}
	return r
}

// seedTyped writes n readings of typedRow through w.
func seedTyped(t *testing.T, w *sink.Writer, n int) {
	t.Helper()
	rows := make([]sink.Row, 0, 10000)
	for i := range n {
		rows = append(rows, typedRow(i))
		if len(rows) == cap(rows) || i == n-1 {
			res, err := w.Write(context.Background(), rows, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Refused) > 0 {
				t.Fatalf("seed: refused %+v", res.Refused[0])
			}
			rows = rows[:0]
		}
	}
}

// allReadings counts the readings of every type in schema of db.
func allReadings(t *testing.T, db pgtest.DB, schema string) int64 {
	t.Helper()
	return db.Count(t, schema, `SELECT (SELECT count(*) FROM readings) + (SELECT count(*) FROM readings_text)
	+ (SELECT count(*) FROM readings_bool) + (SELECT count(*) FROM readings_location)`)
}

// A source of numbers, texts, booleans and locations is copied whole: every type lands in its
// table with its series' type, and verify finds the copy equal. Then a changed text, a deleted
// boolean and a moved location are each found, naming the type.
func TestBackfillAndVerifyTypedReadings(t *testing.T) {
	const total = 20 * 720 // two hours per series
	db := pgtest.Default()
	other := db.Database(t, "")
	src := writer(t, db, nil)
	seedTyped(t, src, total)
	dst := writer(t, other, nil)
	rep, err := transfer.Backfill(context.Background(), sourceOf(t, src), dst, transfer.BackfillConfig{Chunk: 700})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Read != total || rep.New != total || rep.Rejected != 0 {
		t.Fatalf("backfill: read %d, new %d, rejected %d; want %d, %d, 0", rep.Read, rep.New, rep.Rejected, total, total)
	}
	schema := dst.Config().Schema
	for _, c := range []struct {
		sql  string
		want int64
	}{
		{"SELECT count(*) FROM measurements_standard", total * 2 / 5},
		{"SELECT count(*) FROM text_standard", total / 5},
		{"SELECT count(*) FROM bool_standard WHERE value", 4 * 240},
		{"SELECT count(*) FROM location_standard WHERE altitude IS NOT NULL", total / 10},
		{"SELECT count(*) FROM series WHERE type = CASE metric WHEN 'state' THEN 'text' WHEN 'door' THEN 'bool' WHEN 'pos' THEN 'location' ELSE 'number' END", 20},
		{"SELECT count(*) FROM text_standard WHERE value LIKE 'state _ ü'", total / 5},
	} {
		if got := other.Count(t, schema, c.sql); got != c.want {
			t.Errorf("%s: got %d, want %d", c.sql, got, c.want)
		}
	}
	a, b := sourceOf(t, src), sourceOf(t, dst)
	for _, by := range []string{"hour", "day"} {
		if vr, diffs := verify(t, a, b, by); !vr.Equal() || vr.FromRows != total || vr.ToRows != total {
			t.Fatalf("verify by %s after the copy: %+v %+v", by, vr, diffs)
		}
	}
	if vr, _ := verify(t, a, b, "hour"); vr.Buckets != 40 {
		t.Errorf("buckets by hour: got %d, want 40 (20 series × 2 hours)", vr.Buckets)
	}

	q := func(sql string) {
		other.Query(t, schema, func(c *pgx.Conn) error { _, err := c.Exec(context.Background(), sql); return err })
	}
	sid := func(device, metric string) string {
		return fmt.Sprintf("(SELECT id FROM series WHERE device = '%s' AND metric = '%s')", device, metric)
	}
	q(`UPDATE text_standard SET value = 'state 1 u' WHERE time = '2025-03-01T00:10:00Z' AND series_id = ` + sid("dev-1", "state"))
	q(`DELETE FROM bool_standard WHERE time = '2025-03-01T01:20:00Z' AND series_id = ` + sid("dev-2", "door"))
	q(`UPDATE location_standard SET latitude = latitude + 1e-7 WHERE time = '2025-03-01T01:30:00Z' AND series_id = ` + sid("dev-3", "pos"))
	vr, diffs := verify(t, a, b, "hour")
	if vr.Differ != 3 || vr.OnlyFrom != 0 || vr.OnlyTo != 0 || len(diffs) != 3 {
		t.Fatalf("verify: %+v, differences %+v; want 3 differing buckets", vr, diffs)
	}
	var got []string
	for _, d := range diffs {
		got = append(got, fmt.Sprintf("%s/%s %s %s count %d/%d checksum equal %v", d.Device, d.Metric, d.Bucket.Format("15:04"), d.Type.Name(),
			d.From.Count, d.To.Count, d.From.Checksum == d.To.Checksum))
	}
	want := []string{
		"dev-1/state 00:00 text count 360/360 checksum equal false",
		"dev-2/door 01:00 bool count 360/359 checksum equal true", // the deleted one was false
		"dev-3/pos 01:00 location count 360/360 checksum equal true",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("differences:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := diffs[2]; d.To.Lat-d.From.Lat < 0.5e-7 || d.To.Lon != d.From.Lon {
		t.Errorf("location difference: latitude sums %v and %v, longitude sums %v and %v; want the latitude 1e-7 apart", d.From.Lat, d.To.Lat, d.From.Lon, d.To.Lon)
	}
}

// A backfill of typed readings cancelled after a few chunks and run again reads every row
// exactly once and the copy verifies equal.
func TestBackfillResumesTypedReadingsExactlyOnce(t *testing.T) {
	const total = 30000
	db := pgtest.Default()
	src := writer(t, db, nil)
	seedTyped(t, src, total)
	dst := writer(t, db, nil)
	cancelledBackfill(t, src, dst, 7)
	mid := allReadings(t, db, dst.Config().Schema)
	if typed := db.Count(t, dst.Config().Schema, "SELECT count(*) FROM readings_text"); mid < 7000 || mid >= total || typed == 0 {
		t.Fatalf("rows after the cancel: %d (%d texts), want some of each but not all", mid, typed)
	}
	rep, err := transfer.Backfill(context.Background(), sourceOf(t, src), dst, transfer.BackfillConfig{Chunk: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Resumed || rep.Read != total || rep.New != total || rep.RunRows != total-mid {
		t.Fatalf("resumed backfill: resumed %v, read %d, new %d, this run %d; want true, %d, %d, %d", rep.Resumed, rep.Read, rep.New, rep.RunRows, total, total, total-mid)
	}
	if vr, diffs := verify(t, sourceOf(t, src), sourceOf(t, dst), "hour"); !vr.Equal() || vr.ToRows != total {
		t.Fatalf("verify: %+v %+v", vr, diffs)
	}
}

// A reading whose series has another type at the destination is refused with the reason and
// recorded, row by row; the rest of its chunk is copied. A boolean for a series of numbers is
// stored as 1 or 0, as the sink does.
func TestBackfillRefusesATypeConflict(t *testing.T) {
	const total = 20 * 90
	db := pgtest.Default()
	src := writer(t, db, nil)
	seedTyped(t, src, total)
	dst := writer(t, db, nil)
	// dev-1's state and door were numbers at the destination before the copy.
	if _, err := dst.Write(context.Background(), []sink.Row{
		{Time: t0.Add(-time.Hour), Tenant: "acme", Device: "dev-1", Metric: "state", Value: 3},
		{Time: t0.Add(-time.Hour), Tenant: "acme", Device: "dev-1", Metric: "door", Value: 1},
	}, nil); err != nil {
		t.Fatal(err)
	}
	rep, err := transfer.Backfill(context.Background(), sourceOf(t, src), dst, transfer.BackfillConfig{Chunk: 500})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Read != total || rep.Rejected != 90 || rep.New != total-90 {
		t.Fatalf("backfill: read %d, new %d, rejected %d; want %d, %d, 90 (dev-1's texts)", rep.Read, rep.New, rep.Rejected, total, total-90)
	}
	schema := dst.Config().Schema
	var reasons []string
	db.Query(t, schema, func(c *pgx.Conn) error {
		rows, err := c.Query(context.Background(), `SELECT format('%s/%s %s %s: %s', device, metric, type, count(*), reason)
FROM sluice_backfill_rejects WHERE text LIKE 'state % ü' AND sqlstate = '' GROUP BY device, metric, type, reason`)
		if err != nil {
			return err
		}
		reasons, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	want := "dev-1/state text 90: series acme/dev-1/state holds number values and this reading is a text: a series keeps the type of its first reading (name the new value another metric)"
	if len(reasons) != 1 || reasons[0] != want {
		t.Errorf("rejects: %q, want %q", reasons, want)
	}
	if n := db.Count(t, schema, "SELECT count(*) FROM readings WHERE device = 'dev-1' AND metric = 'door' AND value IN (0, 1)"); n != 91 {
		t.Errorf("dev-1's door as numbers: %d rows, want 91", n)
	}
}

// numbersOnly makes the checkpoints in schema of db look as a Sluice that copied numbers only
// stored them; more SQL runs after.
func numbersOnly(t *testing.T, db pgtest.DB, schema, more string) {
	t.Helper()
	db.Query(t, schema, func(c *pgx.Conn) error {
		_, err := c.Exec(context.Background(), "UPDATE sluice_backfill SET typed = false; "+more)
		return err
	})
}

// A source from before typed values (no text_, bool_ or location_ tables) is copied and
// verified as numbers. A checkpoint stored by a Sluice that copied numbers only is resumed
// from a source without typed readings, not from one holding typed readings the copy has
// passed; --restart copies them.
func TestBackfillOfOlderSourcesAndCheckpoints(t *testing.T) {
	db := pgtest.Default()
	for _, drop := range []bool{true, false} {
		old := writer(t, db, nil)
		seed(t, old, 2400)
		if drop {
			db.Query(t, old.Config().Schema, func(c *pgx.Conn) error {
				_, err := c.Exec(context.Background(), "DROP TABLE text_standard, bool_standard, location_standard CASCADE")
				return err
			})
		}
		dst := writer(t, db, nil)
		if rep, err := transfer.Backfill(context.Background(), sourceOf(t, old), dst, transfer.BackfillConfig{Chunk: 500}); err != nil || rep.New != 2400 {
			t.Fatalf("backfill of numbers (typed tables dropped: %v): %+v, %v", drop, rep, err)
		}
		if vr, diffs := verify(t, sourceOf(t, old), sourceOf(t, dst), "hour"); !vr.Equal() || vr.ToRows != 2400 {
			t.Fatalf("verify: %+v %+v", vr, diffs)
		}
		numbersOnly(t, db, dst.Config().Schema, "")
		if rep, err := transfer.Backfill(context.Background(), sourceOf(t, old), dst, transfer.BackfillConfig{Chunk: 500}); err != nil || !rep.AlreadyDone {
			t.Fatalf("numbers-only checkpoint of a source without typed readings (typed tables dropped: %v): %+v, %v; want already done", drop, rep, err)
		}
	}

	src := writer(t, db, nil)
	seedTyped(t, src, 2000)
	dst2 := writer(t, db, nil)
	if _, err := transfer.Backfill(context.Background(), sourceOf(t, src), dst2, transfer.BackfillConfig{Chunk: 500}); err != nil {
		t.Fatal(err)
	}
	schema := dst2.Config().Schema
	numbersOnly(t, db, schema, "DELETE FROM text_standard") // and the texts were never copied
	_, err := transfer.Backfill(context.Background(), sourceOf(t, src), dst2, transfer.BackfillConfig{Chunk: 500})
	if err == nil || !strings.Contains(err.Error(), "this copy was begun by a version of Sluice that copied numbers only") {
		t.Fatalf("resume of a numbers-only checkpoint: %v, want it refused", err)
	}
	rep, err := transfer.Backfill(context.Background(), sourceOf(t, src), dst2, transfer.BackfillConfig{Chunk: 500, Restart: true})
	if err != nil || rep.Read != 2000 || rep.New != 400 {
		t.Fatalf("--restart: %+v, %v; want 2000 read, the 400 texts new", rep, err)
	}
	if vr, diffs := verify(t, sourceOf(t, src), sourceOf(t, dst2), "hour"); !vr.Equal() {
		t.Fatalf("verify: %+v %+v", vr, diffs)
	}
}
