package sink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-iot/sluice/internal/pgtest"
)

// timescaleTarget is storageTarget on the TimescaleDB test database (the test skips loudly
// without one).
func timescaleTarget(t testing.TB) (TargetConfig, pgtest.DB) {
	t.Helper()
	db := pgtest.Timescale(t)
	cfg := storageTarget(t)
	cfg.DatabaseURL = db.URL
	cfg.Schema = db.Schema(t)
	return cfg, db
}

// jobs returns the ids of the schema's TimescaleDB jobs of one kind (policy_refresh_continuous_aggregate,
// policy_compression, policy_retention).
func jobs(t testing.TB, db pgtest.DB, schema, proc string) []int64 {
	t.Helper()
	var ids []int64
	db.Query(t, schema, func(conn *pgx.Conn) error {
		rows, err := conn.Query(context.Background(), `SELECT job_id FROM timescaledb_information.jobs
WHERE proc_name = $2 AND (hypertable_schema = $1 OR hypertable_name IN (SELECT materialization_hypertable_name FROM timescaledb_information.continuous_aggregates WHERE view_schema = $1))
ORDER BY job_id`, schema, proc)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id int64
			rows.Scan(&id)
			ids = append(ids, id)
		}
		return rows.Err()
	})
	return ids
}

// migrateTimescale migrates cfg's schema and takes its jobs off the server's scheduler (which
// fails them on PostgreSQL 15.20, part-way through a refresh): tests run them with runJobs.
func migrateTimescale(t testing.TB, pool *pgxpool.Pool, cfg TargetConfig, db pgtest.DB) []string {
	t.Helper()
	out := migrateOK(t, pool, cfg)
	pauseJobs(t, db, cfg.Schema)
	return out
}

// pauseJobs unschedules every TimescaleDB job of the schema; run_job still runs them.
func pauseJobs(t testing.TB, db pgtest.DB, schema string) {
	t.Helper()
	for _, proc := range []string{"policy_refresh_continuous_aggregate", "policy_compression", "policy_retention"} {
		for _, id := range jobs(t, db, schema, proc) {
			db.Exec(t, fmt.Sprintf("SELECT alter_job(%d, scheduled => false)", id))
		}
	}
}

// runJobs runs every job of a kind in the schema in the foreground, as the scheduler would.
func runJobs(t testing.TB, db pgtest.DB, schema, proc string) {
	t.Helper()
	ids := jobs(t, db, schema, proc)
	if len(ids) == 0 {
		t.Fatalf("no %s jobs in schema %s", proc, schema)
	}
	conn := db.Connect(t, "")
	for _, id := range ids {
		// The server's own scheduler may be running the same job: wait for it to finish.
		deadline := time.Now().Add(2 * time.Minute)
		for {
			_, err := conn.Exec(context.Background(), fmt.Sprintf("CALL run_job(%d)", id))
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "55P03" && time.Now().Before(deadline) {
				continue
			}
			if err != nil {
				t.Fatalf("CALL run_job(%d): %v", id, err)
			}
			break
		}
	}
}

// History written late — readings 5 to 35 days old, after the aggregates were created and
// before their policies ran — is all in readings_1h and readings_1d once the policies have
// run, and so is a reading written later still into an old compressed chunk. (A class with
// retention keeps its aggregates refreshed over its retention period: TestTimescaleRetention.)
func TestTimescaleAggregatesKeepHistory(t *testing.T) {
	cfg, db := timescaleTarget(t)
	pool := testPool(t, cfg)
	migrateTimescale(t, pool, cfg, db)
	w := newWriter(pool, cfg.Schema, cfg.Storage)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Hour)
	var rows []row
	// standard (kept forever) and free (kept 30 days: its aggregates cover its retention)
	for tenant, days := range map[string]int{"acme": 35, "demo": 29} {
		for d := range 3 {
			for m := days * 24 * 2; m >= 5*24*2; m-- {
				rows = append(rows, row{key: seriesKey{tenant, fmt.Sprintf("dev-%d", d), "temp"}, time: now.Add(-time.Duration(m) * 30 * time.Minute), value: float64(m % 17)})
			}
		}
	}
	if _, err := w.write(ctx, rows); err != nil {
		t.Fatal(err)
	}
	raw := db.Count(t, cfg.Schema, "SELECT count(*) FROM readings")
	if raw != int64(len(rows)) {
		t.Fatalf("readings: %d rows, want %d", raw, len(rows))
	}
	compareAggregates := func(when string) {
		t.Helper()
		for _, view := range []string{"readings_1h", "readings_1d"} {
			if got := db.Count(t, cfg.Schema, "SELECT coalesce(sum(count), 0)::bigint FROM "+view); got != raw {
				t.Errorf("%s: sum(count) of %s = %d, want %d (every raw reading)", when, view, got, raw)
			}
		}
	}
	runJobs(t, db, cfg.Schema, "policy_refresh_continuous_aggregate")
	compareAggregates("after the refresh policies ran")
	runJobs(t, db, cfg.Schema, "policy_compression")
	if n := db.Count(t, cfg.Schema, "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_schema = $1 AND is_compressed", cfg.Schema); n == 0 {
		t.Fatal("the compression policies compressed no chunk")
	}

	// A late reading into an old, compressed chunk.
	late := row{key: seriesKey{"acme", "dev-0", "temp"}, time: now.Add(-20*24*time.Hour + 7*time.Minute), value: 1000}
	if _, err := w.write(ctx, []row{late}); err != nil {
		t.Fatal(err)
	}
	raw++
	// The same reading again (a redelivery) beside a new one, into the compressed chunk: the
	// copy meets the stored reading, and the merge stores the new one only.
	w.fallbacks = prometheus.NewCounter(prometheus.CounterOpts{Name: "fallbacks"})
	again := []row{late, {key: late.key, time: late.time.Add(time.Minute), value: 1}}
	if n, err := w.write(ctx, again); err != nil || n != 1 {
		t.Fatalf("a redelivered and a new reading into a compressed chunk = %d, %v; want 1 new row", n, err)
	}
	if got := counterValue(t, w.fallbacks); got != 1 {
		t.Errorf("fallbacks = %v, want 1", got)
	}
	raw++
	runJobs(t, db, cfg.Schema, "policy_refresh_continuous_aggregate")
	compareAggregates("after a late reading into a compressed chunk")
	if got := db.Count(t, cfg.Schema, "SELECT max(max)::bigint FROM readings_1h WHERE device = 'dev-0' AND tenant = 'acme'"); got != 1000 {
		t.Errorf("max of readings_1h for acme/dev-0 = %d, want the late reading's 1000", got)
	}
}

// A database whose refresh policies have the narrow windows of earlier versions (3 and 10
// days) loses older readings from its aggregates once the policies run; sluice migrate
// replaces the policies and refreshes the whole range, which brings them back.
func TestTimescaleMigrateRepairsAggregates(t *testing.T) {
	cfg, db := timescaleTarget(t)
	cfg.Storage.Classes = cfg.Storage.Classes[:1]
	cfg.Storage.Assign = nil
	pool := testPool(t, cfg)
	migrateTimescale(t, pool, cfg, db)
	for _, c := range []struct{ cagg, start string }{{"measurements_standard_1h", "3 days"}, {"measurements_standard_1d", "10 days"}} {
		q := quoteLiteral(pgx.Identifier{cfg.Schema, c.cagg}.Sanitize())
		db.Exec(t, "SELECT remove_continuous_aggregate_policy("+q+")")
		db.Exec(t, fmt.Sprintf("SELECT add_continuous_aggregate_policy(%s, start_offset => INTERVAL '%s', end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 hour')", q, c.start))
	}
	pauseJobs(t, db, cfg.Schema)
	w := newWriter(pool, cfg.Schema, cfg.Storage)
	now := time.Now().UTC().Truncate(time.Hour)
	var rows []row
	for h := 35 * 24; h >= 2; h-- {
		rows = append(rows, row{key: seriesKey{"acme", "dev-1", "temp"}, time: now.Add(-time.Duration(h) * time.Hour), value: float64(h % 11)})
	}
	if _, err := w.write(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	runJobs(t, db, cfg.Schema, "policy_refresh_continuous_aggregate")
	sum := func(view string) int64 {
		return db.Count(t, cfg.Schema, "SELECT coalesce(sum(count), 0)::bigint FROM "+view)
	}
	// The loss this repairs: without it the test would prove nothing.
	if got := sum("readings_1h"); got >= int64(len(rows)) {
		t.Fatalf("with a 3-day policy readings_1h holds %d of %d readings; the scenario lost nothing", got, len(rows))
	}

	out := migrateTimescale(t, pool, cfg, db)
	for _, want := range []string{
		"replacing the refresh policy of measurements_standard_1h: every 30m over all history up to 1h ago, was every 1h over the last 3d up to 1h ago",
		"refreshed measurements_standard_1h over all history, so it holds what the old policy's window left out",
		"replacing the refresh policy of measurements_standard_1d: every 1h over all history up to 1h ago, was every 1h over the last 10d up to 1h ago",
		"refreshed measurements_standard_1d over all history, so it holds what the old policy's window left out",
	} {
		if !slices.Contains(out, want) {
			t.Errorf("migrate output lacks %q; got:\n%s", want, strings.Join(out, "\n"))
		}
	}
	for _, view := range []string{"readings_1h", "readings_1d"} {
		if got := sum(view); got != int64(len(rows)) {
			t.Errorf("after migrate, sum(count) of %s = %d, want %d", view, got, len(rows))
		}
	}
	runJobs(t, db, cfg.Schema, "policy_refresh_continuous_aggregate")
	if got := sum("readings_1h"); got != int64(len(rows)) {
		t.Errorf("after the new policies ran, sum(count) of readings_1h = %d, want %d", got, len(rows))
	}
}
