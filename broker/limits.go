package broker

import (
	"errors"
	"io"
	"net"
	"os"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"
)

// topicAliasMaximum bounds the topic aliases one MQTT 5 client may define (each holds a topic
// string in memory for the life of the connection); mochi's default is 65535.
const topicAliasMaximum = 16

// limitsHook enforces the limits mochi has no option for, tells MQTT 5 clients the ones it
// has, and makes every disconnection visible by reason.
type limitsHook struct {
	mqtt.HookBase
	maxKeepAlive  uint16 // seconds; 0: no cap
	maxPacketSize uint32
	m             *metrics
	warn          zerolog.Logger // sampled
}

// ID implements mqtt.Hook.
func (h *limitsHook) ID() string { return "sluice-limits" }

// Provides implements mqtt.Hook.
func (h *limitsHook) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnPacketEncode || b == mqtt.OnDisconnect
}

// OnConnect implements mqtt.Hook: a keep-alive of 0 (never time out) or above max_keep_alive
// is replaced by max_keep_alive, so that a vanished client's connection is reclaimed. MQTT 5
// clients are told in the CONNACK (Server Keep Alive); MQTT 3.1.1 clients are not, and are
// disconnected after 1.5× max_keep_alive of silence.
func (h *limitsHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if h.maxKeepAlive > 0 && (cl.State.Keepalive == 0 || cl.State.Keepalive > h.maxKeepAlive) {
		cl.State.Keepalive = h.maxKeepAlive
		cl.State.ServerKeepalive = true
	}
	return nil
}

// OnPacketEncode implements mqtt.Hook: a successful MQTT 5 CONNACK advertises the maximum
// packet size and topic alias maximum, which mochi enforces but does not announce.
func (h *limitsHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && pk.ReasonCode == packets.CodeSuccess.Code && cl.Properties.ProtocolVersion == 5 {
		pk.Properties.MaximumPacketSize = h.maxPacketSize
		pk.Properties.TopicAliasMaximum = topicAliasMaximum
	}
	return pk
}

// OnDisconnect implements mqtt.Hook.
func (h *limitsHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	reason := disconnectReason(cl, err)
	h.m.disconnects.WithLabelValues(reason).Inc()
	if reason == "packet_too_large" || reason == "not_authorized" || reason == "error" {
		h.warn.Warn().Err(err).Str("reason", reason).Str("client", cl.ID).Str("remote", cl.Net.Remote).
			Str("listener", cl.Net.Listener).Msg("mqtt client disconnected")
	}
}

func disconnectReason(cl *mqtt.Client, err error) string {
	var code packets.Code
	if errors.As(err, &code) {
		switch code.Code {
		case packets.ErrPacketTooLarge.Code:
			return "packet_too_large"
		case packets.ErrNotAuthorized.Code:
			return "not_authorized"
		case packets.ErrSessionTakenOver.Code:
			return "taken_over"
		case packets.CodeDisconnect.Code, packets.CodeSuccess.Code:
			return "client"
		}
		return "error"
	}
	if cl.IsTakenOver() {
		return "taken_over"
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return "client"
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return "keep_alive"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "keep_alive"
	}
	return "error"
}

func keepAliveSeconds(d time.Duration) uint16 { return uint16(d / time.Second) }
