package broker

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// aliasHook refuses an MQTT 5 PUBLISH whose empty topic names a topic alias the client has not
// set on this connection: the spec makes it a protocol error (DISCONNECT 0x94 Topic Alias
// invalid). mochi instead looks the alias up, finds nothing and
// routes the message to the empty topic, so a client reusing an alias after a reconnect got
// PUBACK 0x00 for a message that went nowhere. An alias above the advertised maximum mochi
// refuses itself.
//
// The hook keeps the set of aliases each connection defined (mochi's own table is not
// readable); a connection's set is dropped when it disconnects.
type aliasHook struct {
	mqtt.HookBase
	srv *mqtt.Server

	mu  sync.Mutex
	set map[*mqtt.Client]aliasSet
}

// aliasSet has bit n set when alias n was defined; aliases go up to topicAliasMaximum.
type aliasSet uint32

// The set must hold every alias from 1 to topicAliasMaximum.
var _ = [32 - topicAliasMaximum - 1]struct{}{}

func newAliasHook(srv *mqtt.Server) *aliasHook {
	return &aliasHook{srv: srv, set: make(map[*mqtt.Client]aliasSet)}
}

// ID implements mqtt.Hook.
func (h *aliasHook) ID() string { return "sluice-topic-alias" }

// Provides implements mqtt.Hook.
func (h *aliasHook) Provides(b byte) bool { return b == mqtt.OnPacketRead || b == mqtt.OnDisconnect }

// OnPacketRead implements mqtt.Hook. It runs on the client's read goroutine before mochi
// processes the packet, so a refused PUBLISH is never acknowledged nor routed.
func (h *aliasHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || cl.Properties.ProtocolVersion != 5 {
		return pk, nil
	}
	alias := pk.Properties.TopicAlias
	if alias == 0 || alias > topicAliasMaximum {
		return pk, nil // no alias, or one mochi refuses itself
	}
	h.mu.Lock()
	defined := h.set[cl]
	if pk.TopicName != "" {
		h.set[cl] = defined | 1<<alias
		h.mu.Unlock()
		return pk, nil
	}
	h.mu.Unlock()
	if defined&(1<<alias) != 0 {
		return pk, nil
	}
	// DisconnectClient writes the DISCONNECT and closes the connection; rejecting the packet
	// stops mochi from processing it and ends the client's read loop.
	_ = h.srv.DisconnectClient(cl, packets.ErrTopicAliasInvalid)
	return pk, packets.ErrRejectPacket
}

// OnDisconnect implements mqtt.Hook: aliases live as long as the network connection.
func (h *aliasHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.mu.Lock()
	delete(h.set, cl)
	h.mu.Unlock()
}
