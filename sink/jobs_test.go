package sink

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

func TestJudge(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	for _, tc := range []struct {
		name   string
		job    JobStatus
		seen   time.Duration // before now
		state  string
		reason string // a part of the reason
	}{
		{"new, not run yet", JobStatus{scheduled: true}, time.Minute, JobPending, ""},
		{"never run for longer than overdue_after", JobStatus{scheduled: true}, 2 * time.Hour, JobOverdue, "never run since 2026-12-05T10:00:00Z"},
		{"succeeded, next start ahead", JobStatus{scheduled: true, LastRunStatus: "Success", LastSuccess: at(-time.Minute), NextStart: at(29 * time.Minute), Runs: 3}, time.Hour, JobOK, ""},
		{"succeeded, next start a little late", JobStatus{scheduled: true, LastRunStatus: "Success", NextStart: at(-59 * time.Minute)}, 5 * time.Hour, JobOK, ""},
		{"succeeded, next start long past", JobStatus{scheduled: true, LastRunStatus: "Success", LastSuccess: at(-3 * time.Hour), NextStart: at(-2 * time.Hour)}, 5 * time.Hour, JobOverdue,
			"due at 2026-12-05T10:00:00Z and not run for 2h0m0s: is the TimescaleDB scheduler running?"},
		{"failed", JobStatus{scheduled: true, LastRunStatus: "Failed", LastRunStart: at(-time.Minute), NextStart: at(time.Hour), Runs: 2, Failures: 2,
			LastError: `cannot drop portal "" while it is being set up`}, time.Hour, JobFailed,
			`last run failed (started 2026-12-05T11:59:00Z): cannot drop portal "" while it is being set up; 2 of 2 runs failed, last success: never`},
		{"failed, no error recorded", JobStatus{scheduled: true, LastRunStatus: "Failed", Runs: 5, Failures: 1, LastSuccess: at(-time.Hour)}, time.Hour, JobFailed,
			"no error recorded in timescaledb_information.job_errors; 1 of 5 runs failed, last success: 2026-12-05T11:00:00Z"},
		{"failed, running again", JobStatus{scheduled: true, running: true, LastRunStatus: "Failed"}, time.Hour, JobFailed, "last run failed"},
		{"started, not finished", JobStatus{scheduled: true, Runs: 1, LastRunStart: at(-time.Second)}, 5 * time.Hour, JobRunning, ""},
		{"running, next start past", JobStatus{scheduled: true, running: true, LastRunStatus: "Success", NextStart: at(-3 * time.Hour)}, 5 * time.Hour, JobRunning, ""},
		{"paused after failing", JobStatus{LastRunStatus: "Failed", NextStart: at(-3 * time.Hour)}, 5 * time.Hour, JobPaused, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := tc.job
			judge(&j, now, now.Add(-tc.seen), time.Hour)
			if j.State != tc.state || !strings.Contains(j.Reason, tc.reason) || (tc.reason == "") != (j.Reason == "") {
				t.Errorf("got state %q, reason %q; want %q, a reason containing %q", j.State, j.Reason, tc.state, tc.reason)
			}
			if got, want := j.Failing(), tc.state == JobFailed || tc.state == JobOverdue; got != want {
				t.Errorf("Failing() = %v, want %v", got, want)
			}
		})
	}
}

func TestJobsConfigValidate(t *testing.T) {
	cfg := DefaultTargetConfig()
	cfg.DatabaseURL = "postgres://x"
	cfg.Jobs = JobsConfig{Interval: -time.Second}
	err := cfg.Validate()
	for _, want := range []string{
		"timescale_jobs.interval: must not be negative (0 turns the checks off)",
		"timescale_jobs.timeout: must be positive",
		"timescale_jobs.overdue_after: must be positive",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error containing %q", err, want)
		}
	}
	if err := DefaultJobsConfig().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// The metrics show each job of the last check with its labels; a job that failed has
// last_run_success and healthy 0; what is unknown (never succeeded, not run yet) is absent.
// Without TimescaleDB there is no series at all.
func TestJobMetrics(t *testing.T) {
	w := newJobWatch(DefaultJobsConfig(), "public", zerolog.Nop())
	reg := prometheus.NewRegistry()
	reg.MustRegister(newJobCollector("main", w))
	if got := exposition(t, reg); got != "" {
		t.Fatalf("before a check found TimescaleDB:\n%s\nwant no series", got)
	}
	checked := time.Unix(1_796_000_000, 0)
	next, success := checked.Add(time.Hour), checked.Add(-time.Hour)
	jobs := []JobStatus{
		{ID: 1004, Kind: "refresh", Relation: "measurements_standard_1h", LastRunStatus: "Failed", Runs: 3, Failures: 2, LastSuccess: &success, NextStart: &next, scheduled: true},
		{ID: 1001, Kind: "compression", Relation: "measurements_standard", scheduled: true},
	}
	for i := range jobs {
		judge(&jobs[i], checked, checked, time.Hour)
	}
	w.timescale, w.st, w.checkErrs = true, JobsStatus{CheckedAt: &checked, Jobs: jobs}, 1
	want := `sluice_timescale_job_check_errors_total{target="main"} 1
sluice_timescale_job_failures_total{job="1001",kind="compression",relation="measurements_standard",target="main"} 0
sluice_timescale_job_failures_total{job="1004",kind="refresh",relation="measurements_standard_1h",target="main"} 2
sluice_timescale_job_healthy{job="1001",kind="compression",relation="measurements_standard",target="main"} 1
sluice_timescale_job_healthy{job="1004",kind="refresh",relation="measurements_standard_1h",target="main"} 0
sluice_timescale_job_last_check_timestamp_seconds{target="main"} 1.796e+09
sluice_timescale_job_last_run_success{job="1004",kind="refresh",relation="measurements_standard_1h",target="main"} 0
sluice_timescale_job_last_success_timestamp_seconds{job="1004",kind="refresh",relation="measurements_standard_1h",target="main"} 1.7959964e+09
sluice_timescale_job_next_start_timestamp_seconds{job="1004",kind="refresh",relation="measurements_standard_1h",target="main"} 1.7960036e+09
sluice_timescale_job_runs_total{job="1001",kind="compression",relation="measurements_standard",target="main"} 0
sluice_timescale_job_runs_total{job="1004",kind="refresh",relation="measurements_standard_1h",target="main"} 3
`
	if got := exposition(t, reg); got != want {
		t.Errorf("metrics:\n%s\nwant:\n%s", got, want)
	}
	if f := w.failing(); len(f) != 1 || f[0].ID != 1004 {
		t.Errorf("failing: got %+v, want job 1004", f)
	}
}

// exposition renders every series of g, one "name{labels} value" line each, sorted by name
// and labels.
func exposition(t testing.TB, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := m.GetGauge().GetValue()
			if c := m.GetCounter(); c != nil {
				v = c.GetValue()
			}
			fmt.Fprintf(&b, "%s{%s} %v\n", mf.GetName(), strings.Join(labels, ","), v)
		}
	}
	return b.String()
}

// A failing job's retry is still failing while it runs (job_stats has no outcome then), and ok
// once it succeeded.
func TestJobRetryStaysFailing(t *testing.T) {
	w := newJobWatch(DefaultJobsConfig(), "public", zerolog.Nop())
	now := time.Now()
	record := func(j JobStatus) JobStatus {
		t.Helper()
		j.ID, j.Kind, j.Relation, j.scheduled = 1004, "refresh", "measurements_standard_1h", true
		if err := w.record([]JobStatus{j}, true, nil, now); err != nil {
			t.Fatal(err)
		}
		return w.status().Jobs[0]
	}
	failed := record(JobStatus{LastRunStatus: "Failed", Runs: 1, Failures: 1, LastError: "boom"})
	if failed.State != JobFailed {
		t.Fatalf("state %q, want failed", failed.State)
	}
	if got := record(JobStatus{Runs: 2, Failures: 1, running: true}); got.State != JobFailed || got.Reason != failed.Reason {
		t.Errorf("while the retry runs: state %q, reason %q; want %q, %q", got.State, got.Reason, JobFailed, failed.Reason)
	}
	if got := record(JobStatus{LastRunStatus: "Success", Runs: 2, Failures: 1}); got.State != JobOK || len(w.failing()) != 0 {
		t.Errorf("after the retry succeeded: state %q, failing %v; want ok, none", got.State, w.failing())
	}
}
