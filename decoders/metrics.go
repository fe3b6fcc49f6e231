package decoders

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the decoder counters, registered on an injected registry. Labels carry decoder
// names and failure reasons only, never device ids.
type Metrics struct {
	calls    *prometheus.CounterVec
	failures *prometheus.CounterVec
	timeouts *prometheus.CounterVec
	duration *prometheus.HistogramVec
	reloads  *prometheus.CounterVec
	runtimes *prometheus.CounterVec
	overruns *prometheus.CounterVec
	retries  *prometheus.CounterVec
}

// NewMetrics creates the sluice_decoder_* metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_decoder_calls_total", Help: "Decode calls, by decoder.",
		}, []string{"decoder"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_decoder_failures_total", Help: "Failed decode calls, by decoder and reason (timeout, starved, exception, reported, invalid_output, output_too_large, stack_overflow, payload, busy, cancelled, other).",
		}, []string{"decoder", "reason"}),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_decoder_timeouts_total", Help: "Decode calls that failed because the script used up its timeout (CPU time of its thread; wall-clock time without per-thread CPU clocks) or the caller's deadline passed, by decoder.",
		}, []string{"decoder"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_decoder_duration_seconds", Help: "Time of one decode call, by decoder.",
			Buckets: []float64{1e-6, 5e-6, 2e-5, 1e-4, 5e-4, 2e-3, 1e-2, 5e-2, 0.1, 0.5},
		}, []string{"decoder"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_decoder_reloads_total", Help: "Script and template (re)loads, by result (ok, error, removed).",
		}, []string{"result"}),
		runtimes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_decoder_runtimes_total", Help: "JavaScript runtimes created and discarded (event created, discarded), by decoder.",
		}, []string{"decoder", "event"}),
		overruns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_decoder_wall_overruns_total", Help: "Script calls that took longer than the timeout in wall-clock time but were let finish because their thread used less CPU than the timeout (a wall-clock limit would have failed them), by decoder.",
		}, []string{"decoder"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_decoder_retries_total", Help: "Decodes retried once because the wall-clock ceiling ended the script before it used its CPU budget (the machine was starved), by decoder and result of the retry (ok, starved, failed).",
		}, []string{"decoder", "result"}),
	}
	for _, r := range []string{"ok", "error", "removed"} { // every series exists from the start, at 0
		m.reloads.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.calls, m.failures, m.timeouts, m.duration, m.reloads, m.runtimes, m.overruns, m.retries} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// instrumented counts the calls of one decoder.
type instrumented struct {
	Decoder
	calls    prometheus.Counter
	timeouts prometheus.Counter
	duration prometheus.Observer
	failures *prometheus.CounterVec
}

func (m *Metrics) wrap(d Decoder) Decoder {
	if m == nil {
		return d
	}
	name := d.Name()
	failures := m.failures.MustCurryWith(prometheus.Labels{"decoder": name})
	for _, r := range reasons { // every series exists from the start, at 0
		failures.WithLabelValues(r)
	}
	if _, ok := d.(*Script); ok {
		m.runtimes.WithLabelValues(name, "created")
		m.runtimes.WithLabelValues(name, "discarded")
		m.overruns.WithLabelValues(name)
		for _, r := range retryResults {
			m.retries.WithLabelValues(name, r)
		}
	}
	return &instrumented{
		Decoder:  d,
		calls:    m.calls.WithLabelValues(name),
		timeouts: m.timeouts.WithLabelValues(name),
		duration: m.duration.WithLabelValues(name),
		failures: failures,
	}
}

// Decode implements Decoder.
func (d *instrumented) Decode(ctx context.Context, in *Input) (*Output, error) {
	start := time.Now()
	out, err := d.Decoder.Decode(ctx, in)
	d.duration.Observe(time.Since(start).Seconds())
	d.calls.Inc()
	if err != nil {
		reason := Reason(err)
		d.failures.WithLabelValues(reason).Inc()
		if reason == "timeout" {
			d.timeouts.Inc()
		}
	}
	return out, err
}

// Unwrap returns the decoder being counted.
func (d *instrumented) Unwrap() Decoder { return d.Decoder }

func (m *Metrics) reload(result string) {
	if m != nil {
		m.reloads.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) runtime(decoder, event string) {
	if m != nil {
		m.runtimes.WithLabelValues(decoder, event).Inc()
	}
}

func (m *Metrics) overrun(decoder string) {
	if m != nil {
		m.overruns.WithLabelValues(decoder).Inc()
	}
}

func (m *Metrics) retry(decoder, result string) {
	if m != nil {
		m.retries.WithLabelValues(decoder, result).Inc()
	}
}

// retryResults are the results of the retry of a starved decode.
var retryResults = []string{"ok", "starved", "failed"}

// reasons are the values Reason returns for a failure.
var reasons = []string{"timeout", "starved", "stack_overflow", "exception", "reported", "invalid_output", "output_too_large", "payload", "busy", "cancelled", "other"}
