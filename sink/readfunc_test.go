package sink

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-iot/sluice/internal/pgtest"
)

// point is one row of readings_points / readings_step.
type point struct {
	time          time.Time
	avg, min, max float64
	count         int64
}

// TestReadFunctionsPlain checks the read functions on plain PostgreSQL, where every step
// aggregates raw rows; TestReadFunctionsTimescale checks them over the continuous aggregates.
func TestReadFunctionsPlain(t *testing.T) {
	if hasTimescale(t) {
		t.Skip("the test database has timescaledb: TestReadFunctionsTimescale covers the functions there")
	}
	cfg := storageTarget(t)
	pool := testPool(t, cfg)
	migrateOK(t, pool, cfg)
	testReadFunctions(t, pgtest.Default(), cfg, func() {})
}

func TestReadFunctionsTimescale(t *testing.T) {
	cfg, db := timescaleTarget(t)
	pool := testPool(t, cfg)
	migrateTimescale(t, pool, cfg, db)
	testReadFunctions(t, db, cfg, func() {
		runJobs(t, db, cfg.Schema, "policy_refresh_continuous_aggregate")
		runJobs(t, db, cfg.Schema, "policy_compression")
	})
}

// testReadFunctions writes one series every 10 minutes over 40 days, the last 3 of them into
// a second class table (as after a class change), and compares what the functions return for
// short, middle and long ranges with the same points computed here from the readings.
func testReadFunctions(t *testing.T, db pgtest.DB, cfg TargetConfig, settle func()) {
	ctx := context.Background()
	pool := testPool(t, cfg)
	w := newWriter(pool, cfg.Schema, cfg.Storage)
	end := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	start := end.Add(-40 * 24 * time.Hour)
	type reading struct {
		at    time.Time
		value float64
	}
	var all []reading
	var rows []row
	for at, i := start, 0; at.Before(end); at, i = at.Add(10*time.Minute), i+1 {
		r := reading{at, float64(i%13) + float64(i%5)/4}
		all = append(all, r)
		if at.Before(end.Add(-3 * 24 * time.Hour)) {
			rows = append(rows, row{key: seriesKey{"acme", "dev-1", "temp"}, time: at, value: r.value})
		}
	}
	rows = append(rows, row{key: seriesKey{"acme", "dev-2", "temp"}, time: start, value: 1}) // another series
	if _, err := w.write(ctx, rows); err != nil {
		t.Fatal(err)
	}
	// The last 3 days went to another class's table, as they would after the series moved.
	db.Query(t, cfg.Schema, func(conn *pgx.Conn) error {
		for _, r := range all[len(rows)-1:] {
			if _, err := conn.Exec(ctx, "INSERT INTO measurements_free (time, series_id, value) SELECT $1, id, $2 FROM series WHERE device = 'dev-1'", r.at, r.value); err != nil {
				return err
			}
		}
		return nil
	})
	settle()

	want := func(since, until time.Time, step time.Duration) []point {
		var out []point
		for _, r := range all {
			if r.at.Before(bin(since, step)) || !r.at.Before(until) {
				continue
			}
			b := bin(r.at, step)
			if len(out) == 0 || !out[len(out)-1].time.Equal(b) {
				out = append(out, point{time: b, min: math.Inf(1), max: math.Inf(-1)})
			}
			p := &out[len(out)-1]
			p.avg += r.value // a sum until the end
			p.min, p.max = math.Min(p.min, r.value), math.Max(p.max, r.value)
			p.count++
		}
		for i := range out {
			out[i].avg /= float64(out[i].count)
		}
		return out
	}
	query := func(sql string, args ...any) []point {
		t.Helper()
		var got []point
		db.Query(t, cfg.Schema, func(conn *pgx.Conn) error {
			rows, err := conn.Query(ctx, sql, args...)
			if err != nil {
				return err
			}
			var p point
			_, err = pgx.ForEachRow(rows, []any{&p.time, &p.avg, &p.min, &p.max, &p.count}, func() error {
				p.time = p.time.UTC()
				got = append(got, p)
				return nil
			})
			return err
		})
		return got
	}
	for _, c := range []struct {
		name         string
		since, until time.Time
		points       int
		step         time.Duration // what the function must pick for points
	}{
		{"2 hours, 12 points: raw rows", end.Add(-2 * time.Hour), end, 12, 10 * time.Minute},
		{"2 hours, 5 points: raw rows in 24-minute steps", end.Add(-2 * time.Hour), end, 5, 24 * time.Minute},
		{"10 days, 100 points: hourly aggregates, 3-hour steps", end.Add(-10 * 24 * time.Hour), end, 100, 3 * time.Hour},
		{"40 days, 20 points: daily aggregates, 2-day steps", start, end, 20, 48 * time.Hour},
		{"from 5 days before the data, unaligned: hourly", start.Add(-5*24*time.Hour - 17*time.Minute), start.Add(24 * time.Hour), 100, 2 * time.Hour},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := query("SELECT * FROM readings_points('acme', 'dev-1', 'temp', $1, $2, $3)", c.since, c.until, c.points)
			compare(t, got, want(c.since, c.until, c.step))
			if len(got) > c.points+1 {
				t.Errorf("%d points for %d asked", len(got), c.points)
			}
		})
	}
	t.Run("step", func(t *testing.T) {
		got := query("SELECT * FROM readings_step('acme', 'dev-1', 'temp', $1, $2, INTERVAL '1 day')", start, end)
		compare(t, got, want(start, end, 24*time.Hour))
		if len(got) != 40 {
			t.Errorf("%d daily points over 40 days, want 40", len(got))
		}
	})
	t.Run("nothing", func(t *testing.T) {
		for _, args := range [][]any{
			{"acme", "dev-9", "temp", start, end}, // no such series
			{"acme", "dev-1", "temp", end, start}, // an empty range
			{"acme", "dev-1", "temp", end.Add(time.Hour), end.Add(2 * time.Hour)},
		} {
			if got := query("SELECT * FROM readings_points($1, $2, $3, $4, $5)", args...); len(got) != 0 {
				t.Errorf("readings_points%v: %d points, want none", args, len(got))
			}
		}
	})
}

// bin is date_bin(step, t, '2000-01-01 00:00:00+00'): the start of t's bucket.
func bin(t time.Time, step time.Duration) time.Time {
	origin := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	return origin.Add(t.Sub(origin) / step * step)
}

func compare(t *testing.T, got, want []point) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d points, want %d\ngot  %v\nwant %v", len(got), len(want), got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if !g.time.Equal(w.time) || g.count != w.count || g.min != w.min || g.max != w.max || math.Abs(g.avg-w.avg) > 1e-9 {
			t.Errorf("point %d: got %s, want %s", i, g, w)
		}
	}
}

func (p point) String() string {
	return fmt.Sprintf("{%s avg %g min %g max %g n %d}", p.time.Format(time.RFC3339), p.avg, p.min, p.max, p.count)
}
