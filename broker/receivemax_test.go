package broker_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	pahopk "github.com/eclipse/paho.golang/packets"

	"github.com/sluice-iot/sluice/broker"
)

// TestReceiveMaximumExceededDisconnectIsReadable: a client that sends more unacknowledged QoS 2
// publishes than the Receive Maximum it was given, and keeps sending, reads the DISCONNECT 0x93
// the broker sends and then the end of the connection, not a reset that destroys the
// DISCONNECT before it is read.
func TestReceiveMaximumExceededDisconnectIsReadable(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listeners[0].Address = "127.0.0.1:0"
	cfg.ReceiveMaximum = 10
	b := start(t, cfg)
	conn, ca := dial5(t, b.Addrs()[0], "greedy")
	if ca.Properties == nil || ca.Properties.ReceiveMaximum == nil || *ca.Properties.ReceiveMaximum != 10 {
		t.Fatalf("CONNACK %+v: want Receive Maximum 10", ca.Properties)
	}
	// 200 QoS 2 publishes in one write, never released: the 11th breaks the limit, and the
	// rest is still unread on the broker's side when it closes the connection.
	var burst bytes.Buffer
	for i := 1; i <= 200; i++ {
		pk := &pahopk.Publish{Topic: "greedy/t", QoS: 2, PacketID: uint16(i), Payload: bytes.Repeat([]byte("x"), 500)}
		if _, err := pk.WriteTo(&burst); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Write(burst.Bytes()); err != nil {
		t.Fatal(err)
	}
	pubrecs := 0
	for {
		cp, err := pahopk.ReadPacket(conn)
		if err != nil {
			t.Fatalf("after %d PUBRECs: %v; want DISCONNECT 0x93", pubrecs, err)
		}
		switch p := cp.Content.(type) {
		case *pahopk.Pubrec:
			pubrecs++
			continue
		case *pahopk.Disconnect:
			if p.ReasonCode != 0x93 {
				t.Fatalf("DISCONNECT 0x%02x, want 0x93 (Receive Maximum exceeded)", p.ReasonCode)
			}
		default:
			t.Fatalf("got %T, want PUBREC or DISCONNECT", cp.Content)
		}
		break
	}
	if pubrecs != 10 {
		t.Errorf("got %d PUBRECs before the DISCONNECT, want 10", pubrecs)
	}
	if _, err := pahopk.ReadPacket(conn); !errors.Is(err, io.EOF) {
		t.Errorf("after DISCONNECT: %v, want the connection closed cleanly (EOF)", err)
	}
}
