package pgtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// FailScheduledRun has the TimescaleDB scheduler run job id now (alter_job next_start), waits
// until job_stats records the end of that run, holds the job a day ahead so no retry changes
// what was recorded, and returns the error timescaledb_information.job_errors holds for its
// last run. The run must fail: on TimescaleDB 2.28.3
// with PostgreSQL 15.20 the scheduler fails every job ("cannot drop portal"). Where the
// scheduler runs the job successfully, t is skipped, and says so loudly; when it does not run
// it within two minutes, t fails.
func (d DB) FailScheduledRun(t testing.TB, id int64) string {
	t.Helper()
	// started is when the last run started (zero before the first), status its outcome
	// ("" while it runs).
	last := func() (started time.Time, status string) {
		d.Query(t, "", func(conn *pgx.Conn) error {
			err := conn.QueryRow(context.Background(), `SELECT coalesce(last_run_started_at, 'epoch'), coalesce(last_run_status, '')
FROM timescaledb_information.job_stats WHERE job_id = $1 AND total_runs > 0`, id).Scan(&started, &status)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			return err
		})
		return started, status
	}
	wait := func(what string, done func(started time.Time, status string) bool) (status string) {
		deadline := time.Now().Add(2 * time.Minute)
		for started, status := last(); ; started, status = last() {
			if done(started, status) {
				return status
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %d: %s within 2 minutes (is the TimescaleDB scheduler running? timescaledb.max_background_workers)", id, what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The scheduler runs a new job at once, and a run that ends reschedules the job: wait for
	// the first run to end before asking for the next.
	wait("the first run did not end", func(started time.Time, status string) bool { return status != "" })
	var asked time.Time
	d.Query(t, "", func(conn *pgx.Conn) error {
		return conn.QueryRow(context.Background(), "SELECT now() FROM alter_job($1, next_start => now())", id).Scan(&asked)
	})
	status := wait("the scheduler did not run it after alter_job(next_start => now())", func(started time.Time, status string) bool {
		return !started.Before(asked) && status != ""
	})
	if status != "Failed" {
		t.Skipf("TIMESCALEDB JOB FAILURE NOT TESTED: the scheduler of this server ran job %d successfully; "+
			"the test needs a failing scheduler such as TimescaleDB 2.28.3 on PostgreSQL 15.20", id)
	}
	// A failed run is retried soon, and a run that fails to start sooner still: hold the job a
	// day ahead, and once no run is under way and none is due, its statistics and errors stay
	// as they are for the caller to read.
	for held := false; !held; {
		d.Exec(t, "SELECT alter_job($1, next_start => now() + interval '1 day')", id)
		wait("a retry did not end", func(started time.Time, status string) bool { return status != "" })
		d.Query(t, "", func(conn *pgx.Conn) error {
			return conn.QueryRow(context.Background(), `SELECT next_start > now() + interval '1 hour'
FROM timescaledb_information.job_stats WHERE job_id = $1`, id).Scan(&held)
		})
	}
	var msg string
	d.Query(t, "", func(conn *pgx.Conn) error {
		err := conn.QueryRow(context.Background(), `SELECT err_message FROM timescaledb_information.job_errors
WHERE job_id = $1 AND start_time >= $2 ORDER BY start_time DESC LIMIT 1`, id, asked).Scan(&msg)
		if err != nil {
			return fmt.Errorf("job %d failed, and job_errors: %w", id, err)
		}
		return nil
	})
	return msg
}

// RecordJobSuccess writes into TimescaleDB's job statistics what its scheduler writes after a
// successful run of job id, and moves the job's next run a day ahead. Tests need it because
// the scheduler of the test server fails every run, and TimescaleDB records no statistics for
// a foreground CALL run_job.
func (d DB) RecordJobSuccess(t testing.TB, id int64) {
	t.Helper()
	d.Exec(t, "SELECT alter_job($1, next_start => now() + interval '1 day')", id)
	d.Exec(t, `UPDATE _timescaledb_internal.bgw_job_stat SET last_start = now(), last_finish = now(), last_successful_finish = now(),
	last_run_success = true, total_runs = total_runs + 1, total_successes = total_successes + 1, consecutive_failures = 0
WHERE job_id = $1`, id)
}

// JobID returns the id of the TimescaleDB job running proc (policy_refresh_continuous_aggregate,
// policy_compression, policy_retention) on relation (a hypertable or continuous aggregate) of
// schema; t fails when there is none.
func (d DB) JobID(t testing.TB, schema, relation, proc string) int64 {
	t.Helper()
	var id int64
	d.Query(t, "", func(conn *pgx.Conn) error {
		err := conn.QueryRow(context.Background(), `SELECT j.job_id FROM timescaledb_information.jobs j
LEFT JOIN timescaledb_information.continuous_aggregates c
	ON c.materialization_hypertable_schema = j.hypertable_schema AND c.materialization_hypertable_name = j.hypertable_name
WHERE (j.hypertable_schema = $1 AND j.hypertable_name = $2 OR c.view_schema = $1 AND c.view_name = $2) AND j.proc_name = $3`,
			schema, relation, proc).Scan(&id)
		if err != nil {
			return fmt.Errorf("job %s of %s.%s: %w", proc, schema, relation, err)
		}
		return nil
	})
	return id
}
