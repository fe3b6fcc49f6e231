package sink

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-iot/sluice/internal/metrictest"
	"github.com/sluice-iot/sluice/internal/pgtest"
)

// On plain PostgreSQL a check finds nothing to report: no status, no failing job, no series.
func TestJobsPlainPostgres(t *testing.T) {
	if hasTimescale(t) {
		t.Skip("the test database has timescaledb")
	}
	cfg := storageTarget(t)
	pool := testPool(t, cfg)
	migrateOK(t, pool, cfg)
	w := newJobWatch(cfg.Jobs, cfg.Schema, quietLog())
	reg := prometheus.NewRegistry()
	reg.MustRegister(newJobCollector(cfg.Name, w))
	if err := w.check(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	if st, f := w.status(), w.failing(); st != nil || f != nil {
		t.Errorf("status %+v, failing %+v: want none", st, f)
	}
	if got := exposition(t, reg); got != "" {
		t.Errorf("metrics on plain PostgreSQL:\n%s\nwant none", got)
	}
	warnings, err := JobWarnings(context.Background(), cfg)
	if err != nil || warnings != nil {
		t.Errorf("JobWarnings: %q, %v; want none", warnings, err)
	}
}

// jobStats is a job's row in timescaledb_information.job_stats.
type jobStats struct {
	runs, failures int64
	lastRunStatus  string
}

func readJobStats(t testing.TB, db pgtest.DB, id int64) jobStats {
	t.Helper()
	var s jobStats
	db.Query(t, "", func(conn *pgx.Conn) error {
		err := conn.QueryRow(context.Background(), `SELECT coalesce(total_runs, 0), coalesce(total_failures, 0), coalesce(last_run_status, '')
FROM timescaledb_information.job_stats WHERE job_id = $1`, id).Scan(&s.runs, &s.failures, &s.lastRunStatus)
		if err == pgx.ErrNoRows {
			return nil
		}
		return err
	})
	return s
}

// FailScheduledRun has the TimescaleDB scheduler run job id now and waits for the run to be
// recorded in job_stats. The run must fail: on TimescaleDB 2.28.3 with PostgreSQL 15.20 the
// scheduler fails every job ("cannot drop portal"); where it runs them, t is skipped, loudly.
// It returns the job's last error from job_errors.
func failScheduledRun(t testing.TB, db pgtest.DB, id int64) string {
	t.Helper()
	before := readJobStats(t, db, id)
	db.Exec(t, "SELECT alter_job($1, next_start => now())", id)
	deadline := time.Now().Add(2 * time.Minute)
	var after jobStats
	for after = readJobStats(t, db, id); after.runs == before.runs; after = readJobStats(t, db, id) {
		if time.Now().After(deadline) {
			t.Fatalf("job %d: the TimescaleDB scheduler did not run it within 2 minutes of alter_job(next_start => now()) (is it running? timescaledb.max_background_workers)", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if after.lastRunStatus != "Failed" {
		t.Skipf("TIMESCALEDB JOB FAILURE NOT TESTED: the scheduler of this server ran job %d successfully (%+v); the test needs a failing scheduler such as TimescaleDB 2.28.3 on PostgreSQL 15.20", id, after)
	}
	var msg string
	db.Query(t, "", func(conn *pgx.Conn) error {
		return conn.QueryRow(context.Background(), "SELECT err_message FROM timescaledb_information.job_errors WHERE job_id = $1 ORDER BY start_time DESC LIMIT 1", id).Scan(&msg)
	})
	return msg
}

// recordSuccess writes into TimescaleDB's job statistics what its scheduler writes after a
// successful run of job id, and moves the next run a day ahead. (The scheduler of the test
// server fails every run, and a foreground CALL run_job is not recorded.)
func recordSuccess(t testing.TB, db pgtest.DB, id int64) {
	t.Helper()
	db.Exec(t, "SELECT alter_job($1, next_start => now() + interval '1 day')", id)
	db.Exec(t, `UPDATE _timescaledb_internal.bgw_job_stat SET last_start = now(), last_finish = now(), last_successful_finish = now(),
	last_run_success = true, total_runs = total_runs + 1, total_successes = total_successes + 1, consecutive_failures = 0
WHERE job_id = $1`, id)
}

// The jobs of a migrated schema are found with their kinds and relations; a failed run of the
// scheduler shows as a failed job with the error job_errors holds, in the metrics too; a
// successful CALL run_job in the foreground changes nothing TimescaleDB records; the
// scheduler's next success makes the job ok again.
func TestTimescaleJobHealth(t *testing.T) {
	cfg, db := timescaleTarget(t)
	pool := testPool(t, cfg)
	migrateOK(t, pool, cfg)
	w := newJobWatch(cfg.Jobs, cfg.Schema, quietLog())
	reg := prometheus.NewRegistry()
	reg.MustRegister(newJobCollector(cfg.Name, w))
	ctx := context.Background()
	check := func() map[string]JobStatus {
		t.Helper()
		if err := w.check(ctx, pool); err != nil {
			t.Fatal(err)
		}
		byName := map[string]JobStatus{}
		for _, j := range w.status().Jobs {
			byName[j.Kind+" "+j.Relation] = j
		}
		return byName
	}
	jobs := check()
	var names []string
	for n := range jobs {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{
		"compression measurements_free", "compression measurements_standard",
		"refresh measurements_archive_1d", "refresh measurements_archive_1h",
		"refresh measurements_free_1d", "refresh measurements_free_1h",
		"refresh measurements_standard_1d", "refresh measurements_standard_1h",
		"retention measurements_free",
	}
	if !slices.Equal(names, want) {
		t.Fatalf("jobs of the schema: got %q, want %q", names, want)
	}

	job := jobs["refresh measurements_standard_1h"]
	id := strconvID(job.ID)
	msg := failScheduledRun(t, db, job.ID)
	if msg == "" {
		t.Fatalf("job %d failed with no row in timescaledb_information.job_errors", job.ID)
	}
	job = check()["refresh measurements_standard_1h"]
	if job.State != JobFailed || job.LastError != msg || !strings.Contains(job.Reason, msg) {
		t.Errorf("after a failed run: state %q, last error %q, reason %q; want failed with %q", job.State, job.LastError, job.Reason, msg)
	}
	if !slices.ContainsFunc(w.failing(), func(j JobStatus) bool { return j.ID == job.ID }) {
		t.Errorf("failing jobs %+v do not name job %d", w.failing(), job.ID)
	}
	for name, want := range map[string]float64{
		"sluice_timescale_job_last_run_success": 0,
		"sluice_timescale_job_healthy":          0,
		"sluice_timescale_job_failures_total":   float64(readJobStats(t, db, job.ID).failures),
	} {
		if got := metrictest.Value(t, reg, name, "job", id); got != want {
			t.Errorf("%s{job=%q} = %v, want %v", name, id, got, want)
		}
	}
	if got := metrictest.Value(t, reg, "sluice_timescale_job_failures_total", "job", id); got < 1 {
		t.Errorf("sluice_timescale_job_failures_total{job=%q} = %v, want at least 1", id, got)
	}
	warnings, err := JobWarnings(ctx, cfg)
	if err != nil || !slices.ContainsFunc(warnings, func(s string) bool {
		return strings.HasPrefix(s, job.Name()+" failed: ") && strings.Contains(s, msg)
	}) {
		t.Errorf("JobWarnings: %q, %v; want %s named with %q", warnings, err, job.Name(), msg)
	}

	// The refresh runs fine in the foreground, but TimescaleDB 2.28 records foreground runs
	// neither in job_stats nor in job_history: the job stays failed until the scheduler's next
	// run succeeds (docs/operations.md).
	db.Exec(t, fmt.Sprintf("CALL run_job(%d)", job.ID))
	if job = check()["refresh measurements_standard_1h"]; job.State != JobFailed {
		t.Errorf("after CALL run_job: state %q; TimescaleDB recorded a foreground run (update docs/operations.md)", job.State)
	}

	recordSuccess(t, db, job.ID)
	job = check()["refresh measurements_standard_1h"]
	if job.State != JobOK || job.Reason != "" || job.LastSuccess == nil {
		t.Errorf("after a successful run: state %q, reason %q, last success %v; want ok", job.State, job.Reason, job.LastSuccess)
	}
	if got := metrictest.Value(t, reg, "sluice_timescale_job_last_run_success", "job", id); got != 1 {
		t.Errorf("sluice_timescale_job_last_run_success{job=%q} = %v, want 1", id, got)
	}
	if got := metrictest.Value(t, reg, "sluice_timescale_job_healthy", "job", id); got != 1 {
		t.Errorf("sluice_timescale_job_healthy{job=%q} = %v, want 1", id, got)
	}
}

func strconvID(id int64) string { return fmt.Sprint(id) }
