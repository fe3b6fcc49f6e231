package main

import (
	"context"
	"fmt"
	"net"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/pgtest"
)

// TestMQTTStateSurvivesKill: SIGKILL, then a restart on the same data dir. A persistent session
// and its subscription, the QoS 1 message queued for it and a retained message were
// acknowledged before the kill: they are all there after it.
func TestMQTTStateSurvivesKill(t *testing.T) {
	bin := sluiceBin(t)
	dir := t.TempDir()
	addr := mqtttest.FreeAddr(t)
	config := writeConfig(t, dir, addr, pgtest.Schema(t), "")
	first := startChild(t, bin, config)
	waitListening(t, addr)

	keeper, _ := session(t, addr, "keeper", 3600)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := keeper.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "cmd/keeper", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	keeper.Disconnect(&paho5.Disconnect{})
	sender, _ := session(t, addr, "sender", 0)
	for _, p := range []*paho5.Publish{
		{Topic: "cfg/site", QoS: 1, Retain: true, Payload: []byte("v1")},
		{Topic: "cmd/keeper", QoS: 1, Payload: []byte("queued-1")},
		{Topic: "cmd/nobody", QoS: 1, Payload: []byte("after")},
	} {
		if _, err := sender.Publish(ctx, p); err != nil {
			t.Fatalf("publish %s: %v", p.Topic, err)
		}
	}
	first.kill(t)

	startChild(t, bin, config)
	waitListening(t, addr)
	keeper, got := session(t, addr, "keeper", 3600)
	defer keeper.Disconnect(&paho5.Disconnect{})
	if !keeper.present {
		t.Fatal("keeper: CONNACK session present is false after SIGKILL and restart")
	}
	mqtttest.WaitFor(t, 15*time.Second, "the queued message", func() bool { return len(got()) > 0 })
	if g := got(); g[0] != "cmd/keeper queued-1 retain=false" {
		t.Errorf("keeper received %q, want the message queued before the kill", g)
	}
	watcher, seen := session(t, addr, "watcher", 0)
	defer watcher.Disconnect(&paho5.Disconnect{})
	if _, err := watcher.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "cfg/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, 15*time.Second, "the retained message", func() bool { return len(seen()) > 0 })
	if g := seen(); g[0] != "cfg/site v1 retain=true" {
		t.Errorf("watcher received %q, want the retained message", g)
	}
}

type client5 struct {
	*paho5.Client
	present bool
}

// session connects an MQTT 5 client with clean start off and the session expiry given, and
// returns what it has received so far ("topic payload retain=…").
func session(t *testing.T, addr, id string, expiry uint32) (*client5, func() []string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	c := paho5.NewClient(paho5.ClientConfig{Conn: conn,
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){func(pr paho5.PublishReceived) (bool, error) {
			mu.Lock()
			got = append(got, fmt.Sprintf("%s %s retain=%v", pr.Packet.Topic, pr.Packet.Payload, pr.Packet.Retain))
			mu.Unlock()
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho5.Connect{ClientID: id, KeepAlive: 30, Properties: &paho5.ConnectProperties{SessionExpiryInterval: &expiry}})
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	return &client5{Client: c, present: ca.SessionPresent}, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

// TestQueuedMessagesSurviveKillAfterPuback: a persistent MQTT 5 subscriber is offline; in each
// round several publishers send a QoS 1 message for it at once and Sluice is SIGKILLed the
// moment the first PUBACK arrives, that is before the broker has handed the message to the
// subscriptions. After the last restart the subscriber reconnects and receives every message
// that was acknowledged.
func TestQueuedMessagesSurviveKillAfterPuback(t *testing.T) {
	bin := sluiceBin(t)
	dir := t.TempDir()
	addr := mqtttest.FreeAddr(t)
	config := writeConfig(t, dir, addr, pgtest.Schema(t), "")
	c := startChild(t, bin, config)
	waitListening(t, addr)
	keeper, _ := session(t, addr, "keeper", 3600)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := keeper.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "cmd/keeper/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	keeper.Disconnect(&paho5.Disconnect{})

	const rounds, publishers = 6, 4
	var mu sync.Mutex
	acked := map[string]bool{}
	for r := range rounds {
		if r > 0 {
			c = startChild(t, bin, config)
			waitListening(t, addr)
		}
		senders := make([]*client5, publishers)
		for i := range senders {
			senders[i], _ = session(t, addr, fmt.Sprintf("sender-%d", i), 0)
		}
		killed := false
		var wg sync.WaitGroup
		for i, s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				payload := fmt.Sprintf("r%d-p%d", r, i)
				if _, err := s.Publish(ctx, &paho5.Publish{Topic: "cmd/keeper/" + payload, QoS: 1, Payload: []byte(payload)}); err != nil {
					return // not acknowledged: not promised
				}
				mu.Lock()
				defer mu.Unlock()
				acked["cmd/keeper/"+payload+" "+payload+" retain=false"] = true
				if !killed {
					killed = true
					c.cmd.Process.Signal(syscall.SIGKILL)
				}
			}()
		}
		wg.Wait()
		c.cmd.Wait()
		mu.Lock()
		if !killed {
			mu.Unlock()
			t.Fatalf("round %d: no publish was acknowledged", r)
		}
		mu.Unlock()
	}

	startChild(t, bin, config)
	waitListening(t, addr)
	keeper, got := session(t, addr, "keeper", 3600)
	defer keeper.Disconnect(&paho5.Disconnect{})
	missing := func() []string {
		seen := map[string]bool{}
		for _, g := range got() {
			seen[g] = true
		}
		var out []string
		for m := range acked {
			if !seen[m] {
				out = append(out, m)
			}
		}
		sort.Strings(out)
		return out
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if m := missing(); len(m) > 0 {
		t.Errorf("%d of %d acknowledged messages never reached the persistent subscriber: %q (received %q)", len(m), len(acked), m, got())
	}
}
