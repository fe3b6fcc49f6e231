package sink

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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

// runJobs runs every job of a kind in the schema in the foreground, as the scheduler would.
func runJobs(t testing.TB, db pgtest.DB, schema, proc string) {
	t.Helper()
	ids := jobs(t, db, schema, proc)
	if len(ids) == 0 {
		t.Fatalf("no %s jobs in schema %s", proc, schema)
	}
	for _, id := range ids {
		db.Exec(t, fmt.Sprintf("CALL run_job(%d)", id))
	}
}

// History written late — readings 5 to 35 days old, after the aggregates were created and
// before their policies ran — is all in readings_1h and readings_1d once the policies have
// run, and so is a reading written later still into an old compressed chunk. (A class with
// retention keeps its aggregates refreshed over its retention period: TestTimescaleRetention.)
func TestTimescaleAggregatesKeepHistory(t *testing.T) {
	cfg, db := timescaleTarget(t)
	pool := testPool(t, cfg)
	migrateOK(t, pool, cfg)
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
	compareAggregates("before any policy ran")
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
	runJobs(t, db, cfg.Schema, "policy_refresh_continuous_aggregate")
	compareAggregates("after a late reading into a compressed chunk")
	if got := db.Count(t, cfg.Schema, "SELECT max(max)::bigint FROM readings_1h WHERE device = 'dev-0' AND tenant = 'acme'"); got != 1000 {
		t.Errorf("max of readings_1h for acme/dev-0 = %d, want the late reading's 1000", got)
	}
}
