package hooks

import "github.com/prometheus/client_golang/prometheus"

type ingestMetrics struct {
	messages      *prometheus.CounterVec
	readings      prometheus.Counter
	refused       *prometheus.CounterVec
	dropped       *prometheus.CounterVec
	decodeSeconds prometheus.Histogram
}

func newIngestMetrics(reg prometheus.Registerer) *ingestMetrics {
	m := &ingestMetrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_ingest_messages_total",
			Help: "MQTT publishes seen by ingest, by result (decoded, failed, unrouted).",
		}, []string{"result"}),
		readings: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_ingest_readings_total",
			Help: "Readings decoded from uplinks.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_ingest_refused_total",
			Help: "QoS 1/2 publishes not acknowledged, by reason (full, error; timeout: not acknowledged in time, maybe stored, PUBACK withheld).",
		}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_ingest_dropped_total",
			Help: "QoS 0 publishes dropped because they could not be stored, by reason (full, error).",
		}, []string{"reason"}),
		decodeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_ingest_decode_seconds",
			Help:    "Time to route and decode one publish.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
		}),
	}
	// Every series an alert rule may watch exists from the start, at 0.
	for vec, values := range map[*prometheus.CounterVec][]string{
		m.messages: {"decoded", "failed", "unrouted"},
		m.refused:  {"full", "error", "timeout"},
		m.dropped:  {"full", "error"},
	} {
		for _, v := range values {
			vec.WithLabelValues(v)
		}
	}
	reg.MustRegister(m.messages, m.readings, m.refused, m.dropped, m.decodeSeconds)
	return m
}
