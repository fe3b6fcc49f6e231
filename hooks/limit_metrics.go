package hooks

import "github.com/prometheus/client_golang/prometheus"

type limitMetrics struct {
	limited   *prometheus.CounterVec
	evictions [2]prometheus.Counter // connection, device
}

func newLimitMetrics(reg prometheus.Registerer, conns, devices *buckets) *limitMetrics {
	evictions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_limit_evictions_total",
		Help: "Token buckets forgotten to stay within limits.max_buckets, by kind (connection, device); a forgotten bucket comes back full.",
	}, []string{"kind"})
	m := &limitMetrics{
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_limit_messages_total",
			Help: "Publishes refused for going over a rate limit, by reason (connection, device) and QoS (0: dropped; 1, 2: MQTT 5 PUBACK 0x96, MQTT 3.1.1 no PUBACK).",
		}, []string{"reason", "qos"}),
		evictions: [2]prometheus.Counter{evictions.WithLabelValues(LimitConnection), evictions.WithLabelValues(LimitDevice)},
	}
	for _, r := range []string{LimitConnection, LimitDevice} { // every series exists from the start, at 0
		for _, q := range []string{"0", "1", "2"} {
			m.limited.WithLabelValues(r, q)
		}
	}
	reg.MustRegister(m.limited, evictions,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_limit_buckets", Help: "Token buckets in use, by kind.", ConstLabels: prometheus.Labels{"kind": LimitConnection},
		}, func() float64 { return float64(conns.len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_limit_buckets", Help: "Token buckets in use, by kind.", ConstLabels: prometheus.Labels{"kind": LimitDevice},
		}, func() float64 { return float64(devices.len()) }),
	)
	return m
}
