package broker_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sluice-iot/sluice/broker"
	"github.com/sluice-iot/sluice/internal/mqtttest"
)

// A packet above max_packet_size disconnects its sender (counted as packet_too_large); the
// broker keeps serving everyone else.
func TestOversizedPacket(t *testing.T) {
	cfg := authConfig(t)
	cfg.MaxPacketSize = 1 << 10
	b := start(t, cfg)
	addr := b.Addrs()[0]
	var seen collector
	mon, err := connect3(t, "tcp://"+addr, "monitor", "monitor", "secret-monitor", nil)
	if err != nil {
		t.Fatal(err)
	}
	mon.Subscribe("sensors/#", 1, seen.handler).WaitTimeout(5 * time.Second)

	lost := make(chan error, 1)
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("big").SetUsername("dev-1").SetPassword("secret-dev-1").
		SetAutoReconnect(false).SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	big := paho.NewClient(opts)
	if tok := big.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	big.Publish("sensors/dev-1/up", 1, false, strings.Repeat("x", 2<<10))
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the client sending a 2KiB packet to a 1KiB broker was not disconnected")
	}
	mqtttest.WaitFor(t, 10*time.Second, "the disconnection to be counted", func() bool {
		return b.counter(t, "sluice_broker_disconnects_total", "reason", "packet_too_large") == 1
	})

	// MQTT 5 clients are told the limit in CONNACK.
	c5, err := mqtttest.Dial5(t, addr, mqtttest.Options5{ID: "v5", Username: "dev-2", Password: "secret-dev-2"})
	if err != nil {
		t.Fatal(err)
	}
	if p := c5.Connack.Properties; p == nil || p.MaximumPacketSize == nil || *p.MaximumPacketSize != 1<<10 {
		t.Errorf("CONNACK maximum packet size: got %+v, want 1024", p)
	}
	if p := c5.Connack.Properties; p.ServerKeepAlive != nil {
		t.Errorf("CONNACK server keep alive: got %d, want none for a keep-alive of 30s", *p.ServerKeepAlive)
	}

	// The broker still serves.
	ok, err := connect3(t, "tcp://"+addr, "small", "dev-1", "secret-dev-1", nil)
	if err != nil {
		t.Fatalf("connect after the oversized packet: %v", err)
	}
	if tok := ok.Publish("sensors/dev-1/up", 1, false, "still here"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	mqtttest.WaitFor(t, 10*time.Second, "the next message", func() bool { return len(seen.list()) == 1 })
	if got := seen.list()[0]; got != "sensors/dev-1/up still here" {
		t.Errorf("got %q", got)
	}
}

// A keep-alive of 0 (never time out) is replaced by max_keep_alive, and MQTT 5 clients are
// told so in CONNACK.
func TestKeepAliveCap(t *testing.T) {
	cfg := authConfig(t)
	cfg.MaxKeepAlive = 2 * time.Minute
	b := start(t, cfg)
	conn, err := net.Dial("tcp", b.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cl := paho5.NewClient(paho5.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := cl.Connect(ctx, &paho5.Connect{ClientID: "ka", KeepAlive: 0, CleanStart: true,
		Username: "dev-1", UsernameFlag: true, Password: []byte("secret-dev-1"), PasswordFlag: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Disconnect(&paho5.Disconnect{})
	if p := ca.Properties; p == nil || p.ServerKeepAlive == nil || *p.ServerKeepAlive != 120 {
		t.Errorf("CONNACK server keep alive: got %+v, want 120", p)
	}
	if p := ca.Properties; p.TopicAliasMaximum == nil || *p.TopicAliasMaximum != 16 {
		t.Errorf("CONNACK topic alias maximum: got %+v, want 16", p)
	}
}

// A connection that never sends CONNECT is closed after connect_timeout.
func TestConnectTimeout(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listeners = []broker.ListenerConfig{{ID: "tcp", Type: "tcp", Address: "127.0.0.1:0"}, {ID: "ws", Type: "ws", Address: "127.0.0.1:0"}}
	cfg.ConnectTimeout = 100 * time.Millisecond
	b := start(t, cfg)
	for i, addr := range b.Addrs() {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("listener %d: a silent connection was still open after 10s (connect_timeout 100ms)", i)
		}
		conn.Close()
	}
}
