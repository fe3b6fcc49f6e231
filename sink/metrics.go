package sink

import "github.com/prometheus/client_golang/prometheus"

type bufferMetrics struct {
	publishSeconds prometheus.Histogram
	publishFailed  *prometheus.CounterVec
	asyncFailed    *prometheus.CounterVec
	usedBytes      prometheus.Gauge
	reclaimed      prometheus.Counter
	dlqBytes       prometheus.Gauge
}

// newBufferMetrics registers the buffer's metrics; the budgets of cfg are constant gauges, so
// that a dashboard can draw the use against them.
func newBufferMetrics(reg prometheus.Registerer, cfg BufferConfig) *bufferMetrics {
	m := &bufferMetrics{
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_buffer_publish_seconds",
			Help:    "Time from a JetStream publish to its acknowledgement, for publishes that wait.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16),
		}),
		publishFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_buffer_publish_failed_total",
			Help: "JetStream publishes that failed, by reason (full, timeout, window_full, closed, other).",
		}, []string{"reason"}),
		asyncFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_buffer_async_publish_failed_total",
			Help: "Asynchronous (QoS 0) publishes JetStream did not store, by reason: these messages are lost.",
		}, []string{"reason"}),
		usedBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_buffer_used_bytes",
			Help: "Bytes held in the stream, against its max_bytes budget.",
		}),
	}
	m.reclaimed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sluice_buffer_reclaimed_messages_total",
		Help: "Uplinks every target had committed, removed to keep the stream below its budget (history kept for replay).",
	})
	m.dlqBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_buffer_dead_letter_bytes",
		Help: "Bytes held in the dead-letter stream, against its dlq_max_bytes budget.",
	})
	for _, r := range publishFailures { // every series exists from the start, at 0
		m.publishFailed.WithLabelValues(r)
		m.asyncFailed.WithLabelValues(r)
	}
	maxBytes := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_buffer_max_bytes",
		Help: "The stream's disk budget (buffer.max_bytes): sluice_buffer_used_bytes reaching it refuses new publishes.",
	})
	maxBytes.Set(float64(cfg.MaxBytes))
	dlqMax := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_buffer_dead_letter_max_bytes",
		Help: "The dead-letter stream's budget (buffer.dlq_max_bytes), against sluice_buffer_dead_letter_bytes.",
	})
	dlqMax.Set(float64(cfg.DLQMaxBytes))
	reg.MustRegister(m.publishSeconds, m.publishFailed, m.asyncFailed, m.usedBytes, m.reclaimed, m.dlqBytes, maxBytes, dlqMax)
	return m
}

// publishFailures are the reasons a publish fails (see reason).
var publishFailures = []string{"full", "timeout", "window_full", "closed", "other"}

type targetMetrics struct {
	rows         prometheus.Counter
	batches      prometheus.Counter
	batchRows    prometheus.Histogram
	batchSeconds prometheus.Histogram
	errors       *prometheus.CounterVec
	pending      prometheus.Gauge
	deadLetters  *prometheus.CounterVec
	lost         prometheus.Counter
	duplicates   prometheus.Counter
}

func newTargetMetrics(reg prometheus.Registerer, target string) *targetMetrics {
	l := prometheus.Labels{"target": target}
	m := &targetMetrics{
		rows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_sink_rows_written_total", Help: "Readings committed to the target.", ConstLabels: l,
		}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_sink_batches_total", Help: "Batches committed to the target.", ConstLabels: l,
		}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_sink_batch_rows", Help: "Readings per committed batch.", ConstLabels: l,
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sluice_sink_batch_seconds", Help: "Time to write and commit one batch.", ConstLabels: l,
			Buckets: prometheus.ExponentialBuckets(1e-3, 2, 14),
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sink_errors_total", Help: "Failed batch attempts, by kind (transient, data).", ConstLabels: l,
		}, []string{"kind"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_sink_consumer_pending_messages", Help: "Messages in the buffer not yet delivered to the target (consumer lag).", ConstLabels: l,
		}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sink_dead_letters_total", Help: "Messages or rows the target refused, recorded on the dead-letter subject, by reason (invalid: failed validation, refused: the database refused it, unreadable: not a wire message).", ConstLabels: l,
		}, []string{"reason"}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_sink_lost_messages_total", Help: "Messages the buffer evicted (nats.when_full: drop_oldest, or nats.max_age) before the target committed them.", ConstLabels: l,
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_sink_duplicate_batches_total", Help: "Batches (or parts of a batch being isolated) whose direct COPY met readings already stored or a concurrent writer's, and were merged again through the staging table skipping what is stored: redeliveries, replays, overlapping writers.", ConstLabels: l,
		}),
	}
	for _, k := range []string{"transient", "data"} { // every series exists from the start, at 0
		m.errors.WithLabelValues(k)
	}
	for _, r := range []string{"invalid", "refused", "unreadable"} {
		m.deadLetters.WithLabelValues(r)
	}
	reg.MustRegister(m.rows, m.batches, m.batchRows, m.batchSeconds, m.errors, m.pending, m.deadLetters, m.lost, m.duplicates)
	return m
}
