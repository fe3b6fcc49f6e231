package hooks

import "github.com/prometheus/client_golang/prometheus"

type loraMetrics struct {
	events       *prometheus.CounterVec
	unknown      *prometheus.CounterVec
	decodeFailed prometheus.Counter
}

func newLoraMetrics(reg prometheus.Registerer) *loraMetrics {
	m := &loraMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_lorawan_events_total",
			Help: "Network-server events seen on chirpstack and ttn routes, by format and kind (up, join, status, log, ack, txack, location, integration, down, other, invalid).",
		}, []string{"format", "kind"}),
		unknown: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_lorawan_unknown_devices_total",
			Help: "Uplinks of devices the registry does not list, by the policy applied (accept, park, reject).",
		}, []string{"policy"}),
		decodeFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_lorawan_decode_failures_total",
			Help: "LoRaWAN uplinks whose decoder failed; each is stored on the error subject.",
		}),
	}
	reg.MustRegister(m.events, m.unknown, m.decodeFailed)
	return m
}
