package hooks

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-iot/sluice/decoders"
)

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
	for _, format := range []decoders.Format{decoders.FormatChirpStack, decoders.FormatTTN} { // every series exists from the start, at 0
		for _, kind := range []string{decoders.KindUp, decoders.KindJoin, decoders.KindStatus, decoders.KindLog, decoders.KindAck,
			decoders.KindTxAck, decoders.KindLocation, decoders.KindIntegration, decoders.KindDown, decoders.KindOther, "invalid"} {
			m.events.WithLabelValues(string(format), kind)
		}
	}
	for _, p := range []string{PolicyAccept, PolicyPark, PolicyReject} {
		m.unknown.WithLabelValues(p)
	}
	reg.MustRegister(m.events, m.unknown, m.decodeFailed)
	return m
}
