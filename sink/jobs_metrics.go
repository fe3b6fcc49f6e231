package sink

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// jobCollector exposes what the last check of a target's TimescaleDB jobs found, one series
// per job labelled with its id, kind and relation (never a device). It exposes nothing for a
// database without TimescaleDB, and a job that is gone is gone from the metrics too.
type jobCollector struct {
	w                                *jobWatch
	healthy, lastRun, runs, failures *prometheus.Desc
	lastSuccess, nextStart           *prometheus.Desc
	checkErrors, lastCheck           *prometheus.Desc
}

func newJobCollector(target string, w *jobWatch) *jobCollector {
	l := prometheus.Labels{"target": target}
	job := []string{"job", "kind", "relation"}
	return &jobCollector{
		w: w,
		healthy: prometheus.NewDesc("sluice_timescale_job_healthy",
			"1 when the TimescaleDB job is not failing, 0 when its last run failed or it is overdue (what makes /readyz degraded).", job, l),
		lastRun: prometheus.NewDesc("sluice_timescale_job_last_run_success",
			"1 when the last run of the TimescaleDB job by the scheduler succeeded, 0 when it failed; absent before the first run.", job, l),
		runs: prometheus.NewDesc("sluice_timescale_job_runs_total",
			"Runs of the TimescaleDB job by the scheduler (job_stats.total_runs).", job, l),
		failures: prometheus.NewDesc("sluice_timescale_job_failures_total",
			"Failed runs of the TimescaleDB job by the scheduler (job_stats.total_failures).", job, l),
		lastSuccess: prometheus.NewDesc("sluice_timescale_job_last_success_timestamp_seconds",
			"When the last successful run of the TimescaleDB job finished; absent when it never succeeded.", job, l),
		nextStart: prometheus.NewDesc("sluice_timescale_job_next_start_timestamp_seconds",
			"When the TimescaleDB scheduler will next run the job; absent when it is not scheduled or has not run yet.", job, l),
		checkErrors: prometheus.NewDesc("sluice_timescale_job_check_errors_total",
			"Checks of the TimescaleDB jobs that failed (timescaledb_information could not be read).", nil, l),
		lastCheck: prometheus.NewDesc("sluice_timescale_job_last_check_timestamp_seconds",
			"When the TimescaleDB jobs were last checked successfully.", nil, l),
	}
}

func (c *jobCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.healthy, c.lastRun, c.runs, c.failures, c.lastSuccess, c.nextStart, c.checkErrors, c.lastCheck} {
		ch <- d
	}
}

func (c *jobCollector) Collect(ch chan<- prometheus.Metric) {
	c.w.mu.Lock()
	timescale, st, errs := c.w.timescale, c.w.st, c.w.checkErrs
	c.w.mu.Unlock()
	if !timescale {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.checkErrors, prometheus.CounterValue, float64(errs))
	if st.CheckedAt != nil {
		ch <- prometheus.MustNewConstMetric(c.lastCheck, prometheus.GaugeValue, float64(st.CheckedAt.UnixMilli())/1e3)
	}
	for _, j := range st.Jobs {
		l := []string{strconv.FormatInt(j.ID, 10), j.Kind, j.Relation}
		ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, bool01(!j.Failing()), l...)
		if j.LastRunStatus != "" {
			ch <- prometheus.MustNewConstMetric(c.lastRun, prometheus.GaugeValue, bool01(j.LastRunStatus == "Success"), l...)
		}
		ch <- prometheus.MustNewConstMetric(c.runs, prometheus.CounterValue, float64(j.Runs), l...)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(j.Failures), l...)
		if j.LastSuccess != nil {
			ch <- prometheus.MustNewConstMetric(c.lastSuccess, prometheus.GaugeValue, float64(j.LastSuccess.UnixMilli())/1e3, l...)
		}
		if j.NextStart != nil && j.scheduled {
			ch <- prometheus.MustNewConstMetric(c.nextStart, prometheus.GaugeValue, float64(j.NextStart.UnixMilli())/1e3, l...)
		}
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
