package broker_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/sluice-iot/sluice/broker"
	"github.com/sluice-iot/sluice/internal/mqtttest"
)

// got5 is an MQTT 5 client that records what it receives, with the retain flag.
type got5 struct {
	*paho5.Client
	mu  sync.Mutex
	msg []string // "topic payload retain=<bool>"
}

func (g *got5) list() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.msg...)
}

func connectGot5(t *testing.T, addr, id string) *got5 {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	g := &got5{}
	g.Client = paho5.NewClient(paho5.ClientConfig{Conn: conn,
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){func(pr paho5.PublishReceived) (bool, error) {
			g.mu.Lock()
			g.msg = append(g.msg, fmt.Sprintf("%s %s retain=%v", pr.Packet.Topic, pr.Packet.Payload, pr.Packet.Retain))
			g.mu.Unlock()
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := g.Connect(ctx, &paho5.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Disconnect(&paho5.Disconnect{}) })
	return g
}

func (g *got5) sub(t *testing.T, o paho5.SubscribeOptions) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sa, err := g.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{o}})
	if err != nil || len(sa.Reasons) != 1 || sa.Reasons[0] > 2 {
		t.Fatalf("subscribe %s: %v %+v", o.Topic, err, sa)
	}
}

func (g *got5) pub(t *testing.T, topic, payload string, retain bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := g.Publish(ctx, &paho5.Publish{Topic: topic, QoS: 1, Retain: retain, Payload: []byte(payload)}); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

// TestSubscriptionOptions checks No Local, Retain As Published and Retain Handling 0, 1 and 2
// with a real MQTT 5 client. Each client ends with a marker message published by another
// client on a topic it subscribed to last, so that "received nothing" is decided by the
// marker's arrival, not by a wait.
func TestSubscriptionOptions(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listeners[0].Address = "127.0.0.1:0"
	b := start(t, cfg)
	addr := b.Addrs()[0]
	other := connectGot5(t, addr, "other")
	other.pub(t, "opts/retained", "kept", true)

	marker := func(t *testing.T, g *got5) []string {
		t.Helper()
		g.sub(t, paho5.SubscribeOptions{Topic: "opts/marker/" + fmt.Sprint(&g.Client), QoS: 1})
		other.pub(t, "opts/marker/"+fmt.Sprint(&g.Client), "end", false)
		mqtttest.WaitFor(t, 10*time.Second, "the marker", func() bool {
			l := g.list()
			return len(l) > 0 && l[len(l)-1] == "opts/marker/"+fmt.Sprint(&g.Client)+" end retain=false"
		})
		l := g.list()
		return l[:len(l)-1]
	}
	check := func(t *testing.T, got []string, want ...string) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("received %q, want %q", got, want)
		}
	}

	t.Run("no local", func(t *testing.T) {
		g := connectGot5(t, addr, "nolocal")
		g.sub(t, paho5.SubscribeOptions{Topic: "opts/nl", QoS: 1, NoLocal: true})
		g.pub(t, "opts/nl", "own", false)
		other.pub(t, "opts/nl", "theirs", false)
		check(t, marker(t, g), "opts/nl theirs retain=false")
	})
	t.Run("no local with an overlapping subscription", func(t *testing.T) {
		// MQTT-3.8.3-3 concerns the No Local subscription only: the other one delivers the
		// client's own message, once, at its QoS.
		g := connectGot5(t, addr, "nolocal-overlap")
		g.sub(t, paho5.SubscribeOptions{Topic: "opts/nlo/#", QoS: 1, NoLocal: true})
		g.sub(t, paho5.SubscribeOptions{Topic: "opts/nlo/a", QoS: 1})
		g.pub(t, "opts/nlo/a", "own-a", false)
		g.pub(t, "opts/nlo/b", "own-b", false) // only the No Local subscription matches
		other.pub(t, "opts/nlo/b", "theirs", false)
		check(t, marker(t, g), "opts/nlo/a own-a retain=false", "opts/nlo/b theirs retain=false")
	})
	t.Run("retain as published", func(t *testing.T) {
		g := connectGot5(t, addr, "rap")
		g.sub(t, paho5.SubscribeOptions{Topic: "opts/rap/1", QoS: 1, RetainAsPublished: true})
		g.sub(t, paho5.SubscribeOptions{Topic: "opts/rap/0", QoS: 1})
		other.pub(t, "opts/rap/1", "a", true)
		other.pub(t, "opts/rap/0", "b", true)
		check(t, marker(t, g), "opts/rap/1 a retain=true", "opts/rap/0 b retain=false")
	})
	t.Run("retain handling 0", func(t *testing.T) {
		g := connectGot5(t, addr, "rh0")
		g.sub(t, paho5.SubscribeOptions{Topic: "opts/retained", QoS: 1, RetainHandling: 0})
		g.sub(t, paho5.SubscribeOptions{Topic: "opts/retained", QoS: 1, RetainHandling: 0}) // again: sent again
		check(t, marker(t, g), "opts/retained kept retain=true", "opts/retained kept retain=true")
	})
	t.Run("retain handling 1", func(t *testing.T) {
		g := connectGot5(t, addr, "rh1")
		g.sub(t, paho5.SubscribeOptions{Topic: "opts/retained", QoS: 1, RetainHandling: 1})
		g.sub(t, paho5.SubscribeOptions{Topic: "opts/retained", QoS: 1, RetainHandling: 1}) // exists: not sent
		check(t, marker(t, g), "opts/retained kept retain=true")
	})
	t.Run("retain handling 2", func(t *testing.T) {
		g := connectGot5(t, addr, "rh2")
		g.sub(t, paho5.SubscribeOptions{Topic: "opts/retained", QoS: 1, RetainHandling: 2})
		check(t, marker(t, g))
	})
}
