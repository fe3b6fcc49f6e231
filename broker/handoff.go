package broker

import (
	"encoding/json"
	"errors"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/nats-io/nuid"
)

// The hand-off journal. mochi acknowledges a QoS 1/2 publish (PUBACK, PUBREC) before it hands
// the message to the subscriptions, and the hand-off is when a message for a persistent
// session is put in flight and stored (OnQosPublish). So, before the acknowledgement, a
// publish that a persistent session's subscription matches is written to the state under
// hof.<id> (the OnPublish hook, which runs last), and deleted once mochi has handed it off
// (OnPublished). An entry left by a kill in between is handed off at the next start, before
// the listeners accept anyone (queueLeftovers).
const stateHandoff = "hof."

// errJournal is the answer to a publish whose hand-off could not be journalled: the state's
// budget is used up or the store is unreachable. Refusing it keeps "acknowledged" meaning
// "kept": MQTT 5 gets reason 0x97, MQTT 3.1.1 no acknowledgement (it resends).
var errJournal = packets.Code{Code: packets.ErrQuotaExceeded.Code, Reason: "mqtt state not stored: message not accepted"}

// OnPublish implements mqtt.Hook: it journals a QoS 1/2 publish that a persistent session is
// due, or refuses the publish when the journal cannot be written.
func (h *persistHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Qos == 0 || cl.Net.Inline || pk.Ignore || !h.due(pk) {
		return pk, nil
	}
	k := stateHandoff + nuid.Next()
	m := message(k, cl, pk, 0)
	m.T = "handoff"
	data, err := json.Marshal(m)
	if err == nil {
		err = h.store.Put(k, data)
	}
	if err != nil {
		h.failed.Inc()
		h.warn.Warn().Err(err).Str("client", cl.ID).Str("topic", pk.TopicName).
			Msg("publish refused: its hand-off to persistent sessions could not be journalled")
		return pk, refusal(cl, pk, errJournal)
	}
	h.pending.Store(cl, k)
	return pk, nil
}

// OnPublished implements mqtt.Hook: the hand-off is done, the journal entry goes.
func (h *persistHook) OnPublished(cl *mqtt.Client, _ packets.Packet) { h.dropPending(cl) }

// dropPending deletes cl's journal entry, if any: after the hand-off, or when mochi gave up
// the publish before it (the acknowledgement could not be written: the client resends).
func (h *persistHook) dropPending(cl *mqtt.Client) {
	if k, ok := h.pending.LoadAndDelete(cl); ok {
		h.del(k.(string))
	}
}

// due reports whether a persistent session has a subscription of QoS 1 or 2 matching pk's
// topic: only then does the hand-off store something.
func (h *persistHook) due(pk packets.Packet) bool {
	if h.sessions.Load() == 0 {
		return false
	}
	subs := h.srv.Topics.Subscribers(pk.TopicName)
	match := func(id string, sub packets.Subscription) bool {
		if sub.Qos == 0 {
			return false
		}
		cl, ok := h.srv.Clients.Get(id)
		return ok && persistent(cl)
	}
	for id, sub := range subs.Subscriptions {
		if match(id, sub) {
			return true
		}
	}
	for _, group := range subs.Shared {
		for id, sub := range group {
			if match(id, sub) {
				return true
			}
		}
	}
	return false
}

// refusal turns a publish the broker does not take into mochi's answer: MQTT 5 QoS 1 a PUBACK
// with code, MQTT 5 QoS 2 a PUBREC with code (written here: mochi would answer with a PUBACK),
// MQTT 3.1.1 nothing (packets.ErrRejectPacket), so that the client resends.
func refusal(cl *mqtt.Client, pk packets.Packet, code packets.Code) error {
	switch {
	case cl.Properties.ProtocolVersion < 5:
		return packets.ErrRejectPacket
	case pk.FixedHeader.Qos == 1:
		return code
	}
	rec := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: pk.PacketID,
		ReasonCode: code.Code, Properties: packets.Properties{ReasonString: code.Reason}}
	if err := cl.WritePacket(rec); err != nil {
		return err
	}
	return packets.ErrRejectPacket
}

// queueLeftovers hands off the journal entries a kill left behind: each message is queued
// into the persistent sessions it is due to by their subscriptions as restored (see
// deliverer), then its entry is deleted. It runs once the state is loaded and before the
// listeners accept connections.
func (h *persistHook) queueLeftovers(d *deliverer) {
	msgs, _ := h.messages(stateHandoff)
	queued := 0
	for _, m := range msgs {
		if m.ID == "" {
			continue
		}
		pk := m.ToPacket()
		if expiry := min(d.srv.Options.Capabilities.MaximumMessageExpiryInterval, int64(pk.Properties.MessageExpiryInterval)); expiry > 0 {
			pk.Expiry = pk.Created + expiry
		}
		for id, sub := range d.subscribers(pk) {
			cl, ok := d.srv.Clients.Get(id)
			if !ok || !persistent(cl) {
				continue
			}
			if err := d.deliver(cl, sub, pk); err == nil {
				queued++
			} else if !errors.Is(err, errExpired) {
				h.warn.Warn().Err(err).Str("client", id).Str("topic", pk.TopicName).Msg("message cut short by a stop not queued")
			}
		}
		h.del(m.ID)
	}
	if len(msgs) > 0 {
		h.log.Info().Int("messages", len(msgs)).Int("queued", queued).Msg("hand-offs cut short by a stop queued for persistent sessions")
	}
}
