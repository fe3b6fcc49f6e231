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
}

// NewMetrics creates the sluice_decoder_* metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_decoder_calls_total", Help: "Decode calls, by decoder.",
		}, []string{"decoder"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_decoder_failures_total", Help: "Failed decode calls, by decoder and reason (timeout, exception, reported, invalid_output, output_too_large, stack_overflow, payload, busy, cancelled, other).",
		}, []string{"decoder", "reason"}),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_decoder_timeouts_total", Help: "Script calls interrupted by the timeout, by decoder.",
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
	}
	for _, r := range []string{"ok", "error", "removed"} { // every series exists from the start, at 0
		m.reloads.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.calls, m.failures, m.timeouts, m.duration, m.reloads, m.runtimes} {
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

// reasons are the values Reason returns for a failure.
var reasons = []string{"timeout", "stack_overflow", "exception", "reported", "invalid_output", "output_too_large", "payload", "busy", "cancelled", "other"}
