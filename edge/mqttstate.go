package edge

import (
	"github.com/sluice-iot/sluice/broker"
	"github.com/sluice-iot/sluice/sink"
)

// The buffer's key-value bucket keeps the broker's MQTT state.
var _ broker.StateStore = (*sink.MQTTState)(nil)

// persistMQTT makes the broker keep its MQTT state (persistent sessions, their subscriptions
// and queued messages, retained messages) in the buffer, when nats.mqtt_state_max_bytes is
// not 0. The broker reads it back when it starts, after the buffer has opened.
func (s *Site) persistMQTT() error {
	st := s.buffer.MQTTState()
	if st == nil {
		return nil
	}
	return s.broker.Persist(st)
}
