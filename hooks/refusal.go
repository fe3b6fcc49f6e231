package hooks

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// refusal is the answer to a publish that Sluice did not take, for the hook to return to mochi.
//
//   - QoS 0, and every QoS on MQTT 3.1.1 (which has no negative acknowledgement): no
//     acknowledgement at all (packets.ErrRejectPacket); a 3.1.1 client keeps the message and
//     resends it after reconnecting.
//   - MQTT 5 QoS 1: a PUBACK carrying code (mochi writes it).
//   - MQTT 5 QoS 2: a PUBREC carrying code, written here, because mochi would answer with a
//     PUBACK; an error PUBREC ends the exchange (MQTT-3.5.2.1).
func refusal(cl *mqtt.Client, qos byte, packetID uint16, code packets.Code) error {
	switch {
	case qos == 0 || cl.Properties.ProtocolVersion < 5:
		return packets.ErrRejectPacket
	case qos == 1:
		return code
	}
	rec := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Pubrec},
		PacketID:    packetID,
		ReasonCode:  code.Code,
		Properties:  packets.Properties{ReasonString: code.Reason},
	}
	if err := cl.WritePacket(rec); err != nil {
		return err // the connection is broken: mochi closes it
	}
	return packets.ErrRejectPacket
}
