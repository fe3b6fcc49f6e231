package edge_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/sitetest"
)

// BenchmarkRelayQoS1 relays QoS 1 messages from one MQTT 5 publisher, which waits for each
// PUBACK, through a whole site (ingest hook, MQTT state in JetStream) to one subscriber: none,
// one with a clean session (session expiry 0), one with a persistent session (expiry 1 h:
// each message is journalled before its PUBACK and stored while in flight). ns/op is per
// message, received by the subscriber.
//
//	go test -run '^$' -bench RelayQoS1 -benchtime 2000x ./edge
func BenchmarkRelayQoS1(b *testing.B) {
	for _, c := range []struct {
		name   string
		expiry int64 // -1: no subscriber
	}{{"no_subscriber", -1}, {"clean_session", 0}, {"persistent_session", 3600}} {
		b.Run(c.name, func(b *testing.B) {
			site := sitetest.Start(b, sitetest.Config(b))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			var got atomic.Int64
			if c.expiry >= 0 {
				sub := relayClient(b, site.MQTTAddr, "relay-sub", uint32(c.expiry), func() { got.Add(1) })
				if _, err := sub.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "relay/#", QoS: 1}}}); err != nil {
					b.Fatal(err)
				}
			}
			pub := relayClient(b, site.MQTTAddr, "relay-pub", 0, nil)
			payload := []byte(`{"v":1}`)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := pub.Publish(ctx, &paho5.Publish{Topic: "relay/x", QoS: 1, Payload: payload}); err != nil {
					b.Fatal(err)
				}
			}
			if c.expiry >= 0 {
				mqtttest.WaitFor(b, time.Minute, "every message at the subscriber", func() bool { return got.Load() >= int64(b.N) })
			}
			b.StopTimer()
		})
	}
}

func relayClient(b *testing.B, addr, id string, expiry uint32, received func()) *paho5.Client {
	b.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	cfg := paho5.ClientConfig{Conn: conn}
	if received != nil {
		cfg.OnPublishReceived = []func(paho5.PublishReceived) (bool, error){func(paho5.PublishReceived) (bool, error) {
			received()
			return true, nil
		}}
	}
	c := paho5.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho5.Connect{ClientID: id, CleanStart: true, KeepAlive: 30,
		Properties: &paho5.ConnectProperties{SessionExpiryInterval: &expiry}}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Disconnect(&paho5.Disconnect{}) })
	return c
}
