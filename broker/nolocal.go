package broker

import (
	"bytes"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"
)

// noLocalHook gives a publisher its own message when one of its matching subscriptions has
// No Local and another does not. mochi merges a client's matching subscriptions into one and
// sets No Local on the merge when any of them has it, so it withholds the message the other
// subscriptions are due (MQTT-3.8.3-3 concerns the No Local subscription only). The hook
// delivers it by those subscriptions alone, after mochi's own deliveries.
type noLocalHook struct {
	mqtt.HookBase
	d   *deliverer
	log zerolog.Logger
}

// ID implements mqtt.Hook.
func (h *noLocalHook) ID() string { return "sluice-no-local" }

// Provides implements mqtt.Hook.
func (h *noLocalHook) Provides(b byte) bool { return bytes.IndexByte([]byte{mqtt.OnPublished}, b) >= 0 }

// OnPublished implements mqtt.Hook; it runs on the publisher's goroutine.
func (h *noLocalHook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline || pk.Ignore || cl.State.Subscriptions.Len() == 0 {
		return
	}
	sub, ok, withheld := ownSubscription(cl, pk.TopicName)
	if !ok || !withheld {
		return
	}
	if err := h.d.deliver(cl, sub, pk); err != nil {
		h.log.Debug().Err(err).Str("client", cl.ID).Msg("own message not delivered")
	}
}
