package edge_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/internal/sitetest"
	"github.com/sluice-iot/sluice/sink"
)

// A TimescaleDB job of the site's schema fails under the scheduler: /readyz answers 200
// "degraded" naming the job and its error, /status lists it with its last error, and its
// metrics say so; once the scheduler's runs succeed, the site is ready again.
func TestTimescaleFailingJob(t *testing.T) {
	db := pgtest.Timescale(t)
	cfg := sitetest.Config(t)
	cfg.Sink.Targets[0].DatabaseURL = db.URL
	cfg.Sink.Targets[0].Schema = db.Schema(t)
	cfg.Sink.Targets[0].Jobs.Interval = 100 * time.Millisecond
	site := sitetest.Start(t, cfg)

	id := db.JobID(t, site.Schema, "measurements_standard_1h", "policy_refresh_continuous_aggregate")
	msg := db.FailScheduledRun(t, id)
	name := fmt.Sprintf("main: job %d (refresh of measurements_standard_1h) failed: ", id)

	var r edge.Readiness
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + site.HTTPAddr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("readyz: HTTP %d, want 200 (degraded, not unavailable)", resp.StatusCode)
		}
		r = getJSON[edge.Readiness](t, site.HTTPAddr, "/readyz")
		named := slices.ContainsFunc(r.Jobs, func(s string) bool { return strings.HasPrefix(s, name) && strings.Contains(s, msg) })
		if named && r.Status == "degraded" && r.Sinks["main"] == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz: got %+v, want degraded, sink main ok, and a job starting %q with %q", r, name, msg)
		}
	}
	label := fmt.Sprintf("job=%d", id)
	if got := gauge(t, site.Registry(), "sluice_timescale_job_last_run_success", label); got != 0 {
		t.Errorf("sluice_timescale_job_last_run_success{%s} = %v, want 0", label, got)
	}
	if got := gauge(t, site.Registry(), "sluice_timescale_job_failures_total", label); got < 1 {
		t.Errorf("sluice_timescale_job_failures_total{%s} = %v, want at least 1", label, got)
	}

	// /status lists every job of the schema; wait until the scheduler has run them all.
	var jobs []sink.JobStatus
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		st := getJSON[edge.Status](t, site.HTTPAddr, "/status")
		if len(st.Targets) != 1 || st.Targets[0].TimescaleJobs == nil {
			t.Fatalf("status: got %+v, want target main with its timescale jobs", st.Targets)
		}
		jobs = st.Targets[0].TimescaleJobs.Jobs
		if len(jobs) == 6 && !slices.ContainsFunc(jobs, func(j sink.JobStatus) bool { return j.LastRunStatus == "" }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status: jobs %+v, want the 6 jobs of class standard (refresh 1h and 1d, compression of its measurements, text, bool and location tables), each run once", jobs)
		}
	}
	i := slices.IndexFunc(jobs, func(j sink.JobStatus) bool { return j.ID == id })
	if i < 0 || jobs[i].State != sink.JobFailed || jobs[i].LastError != msg || jobs[i].Kind != "refresh" || jobs[i].Relation != "measurements_standard_1h" {
		t.Errorf("status: jobs %+v, want job %d, refresh of measurements_standard_1h, failed with %q", jobs, id, msg)
	}

	for _, j := range jobs {
		db.RecordJobSuccess(t, j.ID)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if r = getJSON[edge.Readiness](t, site.HTTPAddr, "/readyz"); r.Status == "ready" && len(r.Jobs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz after the jobs succeeded: got %+v, want ready", r)
		}
	}
	if got := gauge(t, site.Registry(), "sluice_timescale_job_healthy", ""); got != 6 {
		t.Errorf("sum of sluice_timescale_job_healthy = %v, want 6 (every job)", got)
	}
}
