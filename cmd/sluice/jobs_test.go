package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/sink"
)

// `sluice status` sums up each target's TimescaleDB jobs and names each failing one with its
// reason; a target on plain PostgreSQL gets no such line.
func TestPrintStatusJobs(t *testing.T) {
	checked := time.Now().Add(-3 * time.Second)
	st := edge.Status{Ready: "degraded", Targets: []sink.TargetStatus{
		{Name: "main", State: "ok", TimescaleJobs: &sink.JobsStatus{CheckedAt: &checked, Jobs: []sink.JobStatus{
			{ID: 1001, Kind: "compression", Relation: "measurements_standard", State: sink.JobOK},
			{ID: 1002, Kind: "refresh", Relation: "measurements_standard_1h", State: sink.JobFailed, Reason: `last run failed: cannot drop portal "" while it is being set up`},
			{ID: 1003, Kind: "refresh", Relation: "measurements_standard_1d", State: sink.JobOverdue, Reason: "due at 2026-12-05T10:00:00Z and not run for 2h0m0s"},
		}}},
		{Name: "plain", State: "ok"},
	}}
	var out bytes.Buffer
	printStatus(&out, st)
	for _, want := range []string{
		"site: degraded\n",
		"main: timescaledb jobs: 3, 2 failing, checked ",
		`main: job 1002 (refresh of measurements_standard_1h) failed: last run failed: cannot drop portal "" while it is being set up` + "\n",
		"main: job 1003 (refresh of measurements_standard_1d) overdue: due at 2026-12-05T10:00:00Z and not run for 2h0m0s\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("sluice status printed:\n%s\nwant a line %q", out.String(), want)
		}
	}
	if strings.Contains(out.String(), "plain: timescaledb") || strings.Contains(out.String(), "job 1001") {
		t.Errorf("sluice status printed:\n%s\nwant no jobs line for plain, and no line for the job that is ok", out.String())
	}
}

// `sluice migrate` warns of the target's failing TimescaleDB jobs, and succeeds.
func TestMigrateWarnsOfFailingJobs(t *testing.T) {
	db := pgtest.Timescale(t)
	schema := db.Schema(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.yaml")
	cfg := fmt.Sprintf(`
data_dir: %s
log: {level: warn, format: json}
routes:
  - {topic: "sensors/{device}/up", decoder: json, tenant: default}
sink:
  targets:
    - {name: main, database_url: "%s", schema: %s}
`, filepath.Join(dir, "data"), db.URL, schema)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	migrate := func() string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run([]string{"migrate", "--config", path}, &out, &errOut); code != exitOK {
			t.Fatalf("sluice migrate: exit %d\n%s%s", code, out.String(), errOut.String())
		}
		return out.String()
	}
	migrate()
	id := db.JobID(t, schema, "measurements_standard_1h", "policy_refresh_continuous_aggregate")
	msg := db.FailScheduledRun(t, id)
	out := migrate()
	want := fmt.Sprintf("main: warning: timescaledb job %d (refresh of measurements_standard_1h) failed: last run failed", id)
	if !strings.Contains(out, want) || !strings.Contains(out, msg) {
		t.Errorf("sluice migrate printed:\n%s\nwant a line starting %q with %q", out, want, msg)
	}
}
