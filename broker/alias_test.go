package broker_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	pahopk "github.com/eclipse/paho.golang/packets"
	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/sluice-iot/sluice/broker"
	"github.com/sluice-iot/sluice/internal/mqtttest"
)

// TestTopicAliasUnknown: an MQTT 5 PUBLISH with an empty topic and a topic alias the client
// never set on this connection is a protocol error (DISCONNECT 0x94 Topic Alias invalid), not a
// message acknowledged and dropped. An alias it did set keeps working.
func TestTopicAliasUnknown(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listeners[0].Address = "127.0.0.1:0"
	b := start(t, cfg)
	addr := b.Addrs()[0]

	sub, err := mqtttest.Dial5(t, addr, mqtttest.Options5{ID: "watcher"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := sub.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "alias/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}

	pub, err := mqtttest.Dial5(t, addr, mqtttest.Options5{ID: "aliaser"})
	if err != nil {
		t.Fatal(err)
	}
	alias := func(n uint16) *paho5.PublishProperties { return &paho5.PublishProperties{TopicAlias: &n} }
	// Set alias 1, then use it with an empty topic: both arrive.
	for i, p := range []*paho5.Publish{
		{Topic: "alias/a", QoS: 1, Payload: []byte("set"), Properties: alias(1)},
		{Topic: "", QoS: 1, Payload: []byte("reuse"), Properties: alias(1)},
	} {
		pr, err := pub.Publish(ctx, p)
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if pr.ReasonCode != 0 {
			t.Fatalf("publish %d: PUBACK reason 0x%02x, want 0x00", i, pr.ReasonCode)
		}
	}
	mqtttest.WaitFor(t, 10*time.Second, "both messages through the alias", func() bool { return len(sub.Received()) == 2 })
	if got := sub.Received(); got[0] != "alias/a set" || got[1] != "alias/a reuse" {
		t.Fatalf("subscriber got %q, want [alias/a set, alias/a reuse]", got)
	}

	// Alias 2 was never set on this connection; alias 1 was set on the previous connection
	// only (aliases do not outlive their network connection).
	refusedAlias(t, pub, 2)
	pub, err = mqtttest.Dial5(t, addr, mqtttest.Options5{ID: "aliaser"})
	if err != nil {
		t.Fatal(err)
	}
	refusedAlias(t, pub, 1)
	if got := sub.Received(); len(got) != 2 {
		t.Fatalf("subscriber got %q, want only the two messages through a known alias", got)
	}
}

// refusedAlias publishes at QoS 1 with an empty topic and the given alias, and fails the test
// unless the broker answers DISCONNECT 0x94 and no PUBACK.
func refusedAlias(t *testing.T, pub *mqtttest.Client5, n uint16) {
	t.Helper()
	type result struct {
		pr  *paho5.PublishResponse
		err error
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := make(chan result, 1)
	go func() {
		pr, err := pub.Publish(ctx, &paho5.Publish{Topic: "", QoS: 1, Payload: []byte("lost"), Properties: &paho5.PublishProperties{TopicAlias: &n}})
		res <- result{pr, err}
	}()
	select {
	case r := <-res:
		if r.err == nil {
			t.Fatalf("publish with unknown alias %d acknowledged with reason 0x%02x; want DISCONNECT 0x94", n, r.pr.ReasonCode)
		}
		t.Fatalf("publish with unknown alias %d: %v before any DISCONNECT; want DISCONNECT 0x94", n, r.err)
	case lost := <-pub.Lost:
		if lost.Error() != "server disconnect 0x94" {
			t.Fatalf("alias %d: connection ended with %v, want server disconnect 0x94", n, lost)
		}
	case <-ctx.Done():
		t.Fatalf("no DISCONNECT after a publish with unknown topic alias %d", n)
	}
	cancel() // paho waits for a PUBACK until its context ends
	if r := <-res; r.err == nil {
		t.Fatalf("publish with unknown alias %d acknowledged with reason 0x%02x after DISCONNECT", n, r.pr.ReasonCode)
	}
}

// TestTopicAliasAboveMaximum: an alias above the Topic Alias Maximum the CONNACK advertised
// gets DISCONNECT 0x94 too, with a topic or without. paho refuses to send such a packet, so it
// is written with paho's packet encoder on a bare connection.
func TestTopicAliasAboveMaximum(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listeners[0].Address = "127.0.0.1:0"
	b := start(t, cfg)
	for _, topic := range []string{"alias/above", ""} {
		conn, ca := dial5(t, b.Addrs()[0], "above")
		if ca.Properties == nil || ca.Properties.TopicAliasMaximum == nil {
			t.Fatalf("CONNACK %+v: want a Topic Alias Maximum", ca)
		}
		above := *ca.Properties.TopicAliasMaximum + 1
		pk := &pahopk.Publish{Topic: topic, QoS: 1, PacketID: 7, Payload: []byte("x"), Properties: &pahopk.Properties{TopicAlias: &above}}
		if _, err := pk.WriteTo(conn); err != nil {
			t.Fatal(err)
		}
		got, err := pahopk.ReadPacket(conn)
		if err != nil {
			t.Fatalf("topic %q alias %d: read: %v; want DISCONNECT 0x94", topic, above, err)
		}
		if d, ok := got.Content.(*pahopk.Disconnect); !ok || d.ReasonCode != 0x94 {
			t.Fatalf("topic %q alias %d: got %T %+v, want DISCONNECT 0x94", topic, above, got.Content, got.Content)
		}
		if _, err := pahopk.ReadPacket(conn); !errors.Is(err, io.EOF) {
			t.Fatalf("after DISCONNECT: %v, want the connection closed", err)
		}
	}
}

// dial5 opens a bare MQTT 5 connection (paho's packet codec, no client logic) and returns it
// with the CONNACK; it fails the test unless the CONNACK is a success.
func dial5(t testing.TB, addr, id string) (net.Conn, *pahopk.Connack) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := (&pahopk.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: id, CleanStart: true, KeepAlive: 30}).WriteTo(conn); err != nil {
		t.Fatal(err)
	}
	cp, err := pahopk.ReadPacket(conn)
	if err != nil {
		t.Fatalf("read CONNACK: %v", err)
	}
	ca, ok := cp.Content.(*pahopk.Connack)
	if !ok || ca.ReasonCode != 0 {
		t.Fatalf("got %T %+v, want a successful CONNACK", cp.Content, cp.Content)
	}
	return conn, ca
}
