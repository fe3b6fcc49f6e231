package sink

import (
	"errors"
	"fmt"
	"time"
)

// JobsConfig configures how a target watches the TimescaleDB jobs of its schema: the
// compression, retention and refresh policies that migrate created. On a database without
// the timescaledb extension nothing is checked and nothing is reported.
type JobsConfig struct {
	// Interval between two reads of timescaledb_information.jobs, job_stats and job_errors;
	// 0 turns the checks off.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one check.
	Timeout time.Duration `yaml:"timeout"`
	// OverdueAfter is how long past its next start a job may wait for the TimescaleDB scheduler
	// (or, never run, how long after Sluice first saw it) before it counts as overdue.
	OverdueAfter time.Duration `yaml:"overdue_after"`
}

// DefaultJobsConfig returns the defaults: a check every minute, 10s at most each, overdue
// an hour past the next start.
func DefaultJobsConfig() JobsConfig {
	return JobsConfig{Interval: time.Minute, Timeout: 10 * time.Second, OverdueAfter: time.Hour}
}

// Validate reports every problem, each prefixed with its key.
func (c JobsConfig) Validate() error {
	var errs []error
	if c.Interval < 0 {
		errs = append(errs, errors.New("interval: must not be negative (0 turns the checks off)"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("timeout: must be positive"))
	}
	if c.OverdueAfter <= 0 {
		errs = append(errs, errors.New("overdue_after: must be positive"))
	}
	return errors.Join(errs...)
}

// Job states, as reported in JobStatus.State. Failed and overdue jobs make a site degraded.
const (
	JobOK      = "ok"      // the last run succeeded
	JobPending = "pending" // not run yet, and not overdue
	JobRunning = "running" // running now, the run before did not fail
	JobPaused  = "paused"  // not scheduled (alter_job(id, scheduled => false)): not checked
	JobFailed  = "failed"  // the last run failed
	JobOverdue = "overdue" // the scheduler has not run it overdue_after past its next start
)

// JobStatus is one TimescaleDB job on a relation of the target's schema, as job_stats and
// job_errors describe it. Times are the database's; runs and failures count the scheduler's
// runs only (TimescaleDB records no statistics for a foreground CALL run_job).
type JobStatus struct {
	ID       int64  `json:"id"`
	Kind     string `json:"kind"`     // refresh, compression, retention, or the procedure of another job
	Relation string `json:"relation"` // the hypertable or continuous aggregate, e.g. measurements_standard_1h
	State    string `json:"state"`
	// Reason says why a failed or overdue job is, with its last error.
	Reason        string     `json:"reason,omitempty"`
	LastRunStatus string     `json:"last_run_status,omitempty"` // Success or Failed; empty before the first run
	LastRunStart  *time.Time `json:"last_run_started,omitempty"`
	LastSuccess   *time.Time `json:"last_success,omitempty"`
	NextStart     *time.Time `json:"next_start,omitempty"`
	Runs          int64      `json:"runs"`
	Failures      int64      `json:"failures"`
	LastError     string     `json:"last_error,omitempty"` // the last error job_errors holds for it
	LastErrorAt   *time.Time `json:"last_error_at,omitempty"`

	scheduled bool
	running   bool
}

// Failing reports whether the job makes the site degraded.
func (j JobStatus) Failing() bool { return j.State == JobFailed || j.State == JobOverdue }

// Name names the job for people: "job 1004 (refresh of measurements_standard_1h)".
func (j JobStatus) Name() string {
	return fmt.Sprintf("job %d (%s of %s)", j.ID, j.Kind, j.Relation)
}

// JobsStatus is what the last check of a target's TimescaleDB jobs found.
type JobsStatus struct {
	CheckedAt *time.Time `json:"checked_at,omitempty"` // the last check that succeeded
	// Error is why the last check failed; Jobs are then those of the check before.
	Error string      `json:"error,omitempty"`
	Jobs  []JobStatus `json:"jobs"`
}

// judge sets j's state and reason at now. seen is when Sluice first saw the job.
func judge(j *JobStatus, now, seen time.Time, overdueAfter time.Duration) {
	j.State, j.Reason = JobOK, ""
	lastSuccess := "never"
	if j.LastSuccess != nil {
		lastSuccess = j.LastSuccess.UTC().Format(time.RFC3339)
	}
	switch {
	case !j.scheduled:
		j.State = JobPaused
	case j.LastRunStatus == "Failed":
		j.State = JobFailed
		msg := j.LastError
		if msg == "" {
			msg = "no error recorded in timescaledb_information.job_errors"
		}
		at := ""
		if j.LastRunStart != nil {
			at = " (started " + j.LastRunStart.UTC().Format(time.RFC3339) + ")"
		}
		j.Reason = fmt.Sprintf("last run failed%s: %s; %d of %d runs failed, last success: %s", at, msg, j.Failures, j.Runs, lastSuccess)
	case j.running || j.LastRunStatus == "" && j.Runs > 0: // job_stats has no status during a run
		j.State = JobRunning
	case j.NextStart != nil && now.Sub(*j.NextStart) > overdueAfter:
		j.State = JobOverdue
		j.Reason = fmt.Sprintf("due at %s and not run for %s: is the TimescaleDB scheduler running? (timescaledb.max_background_workers, the server log); last success: %s",
			j.NextStart.UTC().Format(time.RFC3339), now.Sub(*j.NextStart).Round(time.Second), lastSuccess)
	case j.LastRunStatus == "" && j.NextStart == nil && now.Sub(seen) > overdueAfter:
		j.State = JobOverdue
		j.Reason = fmt.Sprintf("never run since %s: is the TimescaleDB scheduler running? (timescaledb.max_background_workers, the server log)", seen.UTC().Format(time.RFC3339))
	case j.LastRunStatus == "":
		j.State = JobPending
	}
}
