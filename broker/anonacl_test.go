package broker_test

import (
	"context"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/sluice-iot/sluice/broker"
	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/internal/mqtttest"
)

// TestQuickStartACLRefusesSubscription: the quick-start config (anonymous access on loopback)
// given global ACL rules applies them to anonymous clients too: a subscription they refuse
// gets reason 0x87 (Not authorized) in its SUBACK, one they allow its QoS, and a publish they
// refuse PUBACK 0x87. With no rule, anonymous clients keep full access.
func TestQuickStartACLRefusesSubscription(t *testing.T) {
	sample, err := edge.LoadConfig("../configs/sluice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		acl     []broker.ACLRule
		secret  byte // SUBACK reason for secret/#
		pubCode byte // PUBACK reason for a publish to secret/x
	}{
		{"no rules", nil, 0x01, 0x00},
		{"rules", []broker.ACLRule{{Topic: "sensors/#", Access: "subscribe"}, {Topic: "sensors/+/up", Access: "publish"}}, 0x87, 0x87},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sample.MQTT
			cfg.Listeners = []broker.ListenerConfig{{ID: "tcp", Type: "tcp", Address: "127.0.0.1:0"}}
			cfg.Auth.ACL = tc.acl
			b := start(t, cfg)
			c, err := mqtttest.Dial5(t, b.Addrs()[0], mqtttest.Options5{ID: "anon-" + tc.name})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			sa, err := c.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{
				{Topic: "sensors/#", QoS: 1}, {Topic: "secret/#", QoS: 1},
			}})
			if sa == nil {
				t.Fatalf("subscribe: %v", err)
			}
			if len(sa.Reasons) != 2 || sa.Reasons[0] != 0x01 || sa.Reasons[1] != tc.secret {
				t.Errorf("SUBACK reasons %#v, want [0x01 0x%02x]", sa.Reasons, tc.secret)
			}
			pr, err := c.Publish(ctx, &paho5.Publish{Topic: "secret/x", QoS: 1, Payload: []byte("x")})
			if pr == nil {
				t.Fatalf("publish: %v", err)
			}
			if pr.ReasonCode != tc.pubCode {
				t.Errorf("PUBACK 0x%02x, want 0x%02x", pr.ReasonCode, tc.pubCode)
			}
		})
	}
}
