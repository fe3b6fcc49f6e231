package sink

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
)

// jobKinds names the policies Sluice creates.
var jobKinds = map[string]string{
	"policy_refresh_continuous_aggregate": "refresh",
	"policy_compression":                  "compression",
	"policy_retention":                    "retention",
}

// jobsQuery reads the jobs on the hypertables and continuous aggregates of schema $1, with
// their statistics and their last error (%s: lastError, or noError for a TimescaleDB without
// the job_errors view). The jobs view names a continuous aggregate's job by the view (2.23+)
// or by its materialization hypertable (older versions); both are mapped to the view.
// Timestamps that are not finite (a last success of -infinity: never) read as NULL.
const jobsQuery = `SELECT j.job_id, j.proc_name::text, coalesce(c.view_name, j.hypertable_name)::text, j.scheduled,
	coalesce(s.job_status, '') = 'Running', coalesce(s.last_run_status, ''),
	CASE WHEN isfinite(s.last_run_started_at) THEN s.last_run_started_at END,
	CASE WHEN isfinite(s.last_successful_finish) THEN s.last_successful_finish END,
	CASE WHEN isfinite(s.next_start) THEN s.next_start END,
	coalesce(s.total_runs, 0), coalesce(s.total_failures, 0),
	e.err_message, CASE WHEN isfinite(e.at) THEN e.at END
FROM timescaledb_information.jobs j
LEFT JOIN timescaledb_information.continuous_aggregates c
	ON c.materialization_hypertable_schema = j.hypertable_schema AND c.materialization_hypertable_name = j.hypertable_name
LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
LEFT JOIN LATERAL (%s) e ON true
WHERE j.hypertable_schema = $1 OR c.view_schema = $1
ORDER BY j.job_id`

const (
	lastError = `SELECT e.err_message, coalesce(e.finish_time, e.start_time) AS at
	FROM timescaledb_information.job_errors e WHERE e.job_id = j.job_id
	ORDER BY e.start_time DESC LIMIT 1`
	noError = `SELECT NULL::text AS err_message, NULL::timestamptz AS at`
)

// readJobs reads the jobs of schema. It returns ok false, and no error, when the database has
// no timescaledb extension.
func readJobs(ctx context.Context, conn querier, schema string) (jobs []JobStatus, ok bool, err error) {
	installed, _, err := timescaleVersion(ctx, conn)
	if err != nil || installed == "" {
		return nil, false, err
	}
	var errorsView bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('timescaledb_information.job_errors') IS NOT NULL").Scan(&errorsView); err != nil {
		return nil, true, fmt.Errorf("read timescaledb jobs: %w", err)
	}
	q := fmt.Sprintf(jobsQuery, noError)
	if errorsView {
		q = fmt.Sprintf(jobsQuery, lastError)
	}
	rows, err := conn.Query(ctx, q, schema)
	if err != nil {
		return nil, true, fmt.Errorf("read timescaledb jobs: %w", err)
	}
	var j JobStatus
	var proc string
	var lastErr *string
	jobs = []JobStatus{}
	_, err = pgx.ForEachRow(rows, []any{&j.ID, &proc, &j.Relation, &j.scheduled, &j.running, &j.LastRunStatus,
		&j.LastRunStart, &j.LastSuccess, &j.NextStart, &j.Runs, &j.Failures, &lastErr, &j.LastErrorAt}, func() error {
		j.Kind = proc
		if k, ok := jobKinds[proc]; ok {
			j.Kind = k
		}
		j.LastError = ""
		if lastErr != nil {
			j.LastError = *lastErr
		}
		jobs = append(jobs, j)
		j = JobStatus{}
		return nil
	})
	if err != nil {
		return nil, true, fmt.Errorf("read timescaledb jobs: %w", err)
	}
	return jobs, true, nil
}

// jobWatch holds what the last checks of one target's jobs found.
type jobWatch struct {
	cfg    JobsConfig
	schema string
	log    zerolog.Logger

	mu        sync.Mutex
	timescale bool                // the last check found the extension
	st        JobsStatus          // guarded by mu; Jobs replaced, never modified
	seen      map[int64]time.Time // when each job was first seen
	checkErrs int64
}

func newJobWatch(cfg JobsConfig, schema string, log zerolog.Logger) *jobWatch {
	return &jobWatch{cfg: cfg, schema: schema, log: log, seen: map[int64]time.Time{}}
}

// check reads the jobs once and records what it found; it logs a job when it starts or stops
// failing.
func (w *jobWatch) check(ctx context.Context, conn querier) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	jobs, ok, err := readJobs(ctx, conn, w.schema)
	return w.record(jobs, ok, err, time.Now())
}

// record keeps what a check found at now: the jobs (ok false: no TimescaleDB) or err.
func (w *jobWatch) record(jobs []JobStatus, ok bool, err error, now time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.checkErrs++
		w.st.Error = err.Error()
		return err
	}
	w.timescale = ok
	if !ok {
		w.st = JobsStatus{}
		return nil
	}
	before := map[int64]JobStatus{}
	for _, j := range w.st.Jobs {
		before[j.ID] = j
	}
	seen := make(map[int64]time.Time, len(jobs))
	for i := range jobs {
		j := &jobs[i]
		if seen[j.ID] = w.seen[j.ID]; seen[j.ID].IsZero() {
			seen[j.ID] = now
		}
		judge(j, now, seen[j.ID], w.cfg.OverdueAfter)
		was, known := before[j.ID]
		if j.State == JobRunning && known && was.Failing() {
			// A failing job's retry: job_stats forgets the last outcome until it ends.
			j.State, j.Reason, j.LastRunStatus = was.State, was.Reason, was.LastRunStatus
		}
		switch {
		case j.Failing() && (!known || !was.Failing() || was.LastError != j.LastError):
			w.log.Error().Int64("job", j.ID).Str("kind", j.Kind).Str("relation", j.Relation).Str("state", j.State).
				Str("reason", j.Reason).Msg("timescaledb job failing")
		case known && was.Failing() && !j.Failing():
			w.log.Info().Int64("job", j.ID).Str("kind", j.Kind).Str("relation", j.Relation).Str("state", j.State).
				Msg("timescaledb job recovered")
		}
	}
	w.seen = seen
	w.st = JobsStatus{CheckedAt: &now, Jobs: jobs}
	return nil
}

// status returns the last check's findings, nil when the database has no TimescaleDB (or
// no check has run yet).
func (w *jobWatch) status() *JobsStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.timescale {
		return nil
	}
	st := w.st
	return &st
}

// failing returns the jobs that failed or are overdue, as last checked.
func (w *jobWatch) failing() []JobStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []JobStatus
	for _, j := range w.st.Jobs {
		if j.Failing() {
			out = append(out, j)
		}
	}
	return out
}

// WatchJobs checks the TimescaleDB jobs of the target's schema every timescale_jobs.interval
// until ctx is cancelled, first at once: metrics, FailingJobs and Report show what the last
// check found. It returns at once when the checks are off. A check that fails is counted
// and logged, and leaves the previous findings in place.
func (t *Target) WatchJobs(ctx context.Context) {
	if t.cfg.Jobs.Interval == 0 {
		return
	}
	tick := time.NewTicker(t.cfg.Jobs.Interval)
	defer tick.Stop()
	failing := false // log when checks start failing and work again, not every time
	for {
		err := t.checkJobs(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil && !failing && t.jobs.status() != nil: // silent on plain PostgreSQL
			t.log.Warn().Err(err).Msg("timescaledb jobs cannot be checked; retrying every " + t.cfg.Jobs.Interval.String())
		case err == nil && failing && t.jobs.status() != nil:
			t.log.Info().Msg("timescaledb jobs checked again")
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (t *Target) checkJobs(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Jobs.Timeout)
	defer cancel()
	conn, err := t.pool.Acquire(ctx)
	if err != nil {
		t.jobs.mu.Lock()
		t.jobs.checkErrs++
		t.jobs.st.Error = err.Error()
		t.jobs.mu.Unlock()
		return fmt.Errorf("check timescaledb jobs: %w", err)
	}
	defer conn.Release()
	return t.jobs.check(ctx, conn)
}

// FailingJobs returns the TimescaleDB jobs of the target's schema that failed their last run
// or are overdue, as the last check found them; none on plain PostgreSQL.
func (t *Target) FailingJobs() []JobStatus { return t.jobs.failing() }

// JobWarnings reads the jobs of a target's schema once and returns one line for each that is
// failing, for `sluice migrate` to print. A job that never ran is not overdue here.
func JobWarnings(ctx context.Context, cfg TargetConfig) ([]string, error) {
	pool, err := newPool(cfg.DatabaseURL, cfg.Schema, 1)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	w := newJobWatch(cfg.Jobs, cfg.Schema, zerolog.Nop())
	if err := w.check(ctx, pool); err != nil {
		return nil, err
	}
	var out []string
	for _, j := range w.failing() {
		out = append(out, j.Name()+" "+j.State+": "+j.Reason)
	}
	sort.Strings(out)
	return out, nil
}
