package broker

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"
)

// dropsHook makes every message mochi drops on its way to a subscriber visible: a counter per
// reason and a sampled warning with the client id. mochi drops a message when the client's
// pending-write queue (max_pending_writes) is full, when it already has max_inflight QoS 1/2
// messages unacknowledged (counted from mochi's own counter: there is no hook for it), and
// when a QoS 1/2 message in flight expires or its session ends.
//
// MQTT subscribers are therefore best-effort consumers. Backends that need every reading read
// the NATS stream, which never drops.
type dropsHook struct {
	mqtt.HookBase
	m    *metrics
	warn zerolog.Logger // sampled
}

func newDropsHook(m *metrics, log zerolog.Logger) *dropsHook {
	return &dropsHook{m: m, warn: log.Sample(&zerolog.BurstSampler{Burst: 10, Period: 10 * time.Second})}
}

// ID implements mqtt.Hook.
func (h *dropsHook) ID() string { return "sluice-drops" }

// Provides implements mqtt.Hook.
func (h *dropsHook) Provides(b byte) bool {
	return b == mqtt.OnPublishDropped || b == mqtt.OnQosDropped
}

// OnPublishDropped implements mqtt.Hook: the client's pending-write queue was full.
func (h *dropsHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	h.drop(cl, pk, "pending_writes_full")
}

// OnQosDropped implements mqtt.Hook: a QoS 1/2 message in flight was given up.
func (h *dropsHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	switch {
	case cl.IsTakenOver():
		// a new connection resumed the session: its messages went with it
	case pk.FixedHeader.Type == packets.Publish && cl.Closed():
		h.drop(cl, pk, "session_ended")
	case pk.FixedHeader.Type == packets.Publish:
		h.drop(cl, pk, "expired")
	case pk.FixedHeader.Type == packets.Pubrec && pk.ReasonCode >= packets.ErrUnspecifiedError.Code:
		h.drop(cl, pk, "refused_by_client")
	}
	// Anything else is not a message to a subscriber: the broker's own acknowledgements of a
	// client's QoS 2 publish, cleared with its session, or the empty second report mochi makes
	// of an expired message (counted once, from the first).
}

func (h *dropsHook) drop(cl *mqtt.Client, pk packets.Packet, reason string) {
	h.m.dropped.WithLabelValues(reason).Inc()
	h.warn.Warn().Str("reason", reason).Str("client", cl.ID).Str("topic", pk.TopicName).Uint8("qos", pk.FixedHeader.Qos).
		Msg("message to mqtt subscriber dropped; consume the NATS stream to receive every reading")
}
