package hooks

import "github.com/prometheus/client_golang/prometheus"

type filterMetrics struct {
	readings  [5]prometheus.Counter // changed, heartbeat, first, unfiltered, suppressed
	evictions prometheus.Counter
	snapshots *prometheus.CounterVec
	replayed  prometheus.Counter
}

func newFilterMetrics(reg prometheus.Registerer, maxSeries int, tracked func() int) *filterMetrics {
	readings := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_filter_readings_total",
		Help: "Readings judged by store-on-change, by result: kept as changed (outside the deadband), heartbeat (inside it, heartbeat passed), first (no kept value known), unfiltered (no rule), or suppressed (inside the deadband).",
	}, []string{"result"})
	m := &filterMetrics{
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_filter_evictions_total",
			Help: "Series forgotten by store-on-change to stay within max_series (least recently seen first); their next reading is kept.",
		}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_filter_snapshots_total",
			Help: "Store-on-change state snapshots written to the data dir, by result (ok, error).",
		}, []string{"result"}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_filter_replayed_uplinks_total",
			Help: "Stored uplinks replayed at start-up to bring the store-on-change state past its last snapshot.",
		}),
	}
	for i, r := range []string{keptChanged, keptHeartbeat, keptFirst, keptOff, suppressed} {
		m.readings[i] = readings.WithLabelValues(r)
	}
	m.snapshots.WithLabelValues("ok") // every series exists from the start, at 0
	m.snapshots.WithLabelValues("error")
	reg.MustRegister(readings, m.evictions, m.snapshots, m.replayed,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_filter_series",
			Help: "Series whose last kept value store-on-change remembers.",
		}, func() float64 { return float64(tracked()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_filter_series_max",
			Help: "The store-on-change series bound (store_on_change.max_series).",
		}, func() float64 { return float64(maxSeries) }),
	)
	return m
}
