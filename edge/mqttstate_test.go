package edge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/sink"

	"github.com/sluice-iot/sluice/internal/metrictest"
	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/sitetest"
)

// session5 is an MQTT 5 client that records what it receives ("topic payload retain=…").
type session5 struct {
	*paho5.Client
	connack *paho5.Connack
	mu      sync.Mutex
	got     []string
}

func (s *session5) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

// dialSession connects id with clean start off and the given session expiry (seconds).
func dialSession(t *testing.T, addr, id string, expiry uint32) *session5 {
	t.Helper()
	return dialSessionAck(t, addr, id, expiry, true)
}

// dialSessionAck is dialSession; a client that does not ack receives messages and never
// acknowledges them.
func dialSessionAck(t *testing.T, addr, id string, expiry uint32, ack bool) *session5 {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s := &session5{}
	s.Client = paho5.NewClient(paho5.ClientConfig{Conn: conn, EnableManualAcknowledgment: !ack,
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){func(pr paho5.PublishReceived) (bool, error) {
			s.mu.Lock()
			s.got = append(s.got, fmt.Sprintf("%s %s retain=%v", pr.Packet.Topic, pr.Packet.Payload, pr.Packet.Retain))
			s.mu.Unlock()
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := s.Connect(ctx, &paho5.Connect{ClientID: id, CleanStart: false, KeepAlive: 30,
		Properties: &paho5.ConnectProperties{SessionExpiryInterval: &expiry}})
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	s.connack = ca
	return s
}

func (s *session5) leave() { s.Disconnect(&paho5.Disconnect{ReasonCode: 0}) }

// subscribeAway makes the persistent session id (expiry 1 h) with subs, and leaves it: it is
// offline when this returns.
func subscribeAway(ctx context.Context, t *testing.T, site *sitetest.Site, id string, subs ...paho5.SubscribeOptions) {
	t.Helper()
	s := dialSession(t, site.MQTTAddr, id, 3600)
	if _, err := s.Subscribe(ctx, &paho5.Subscribe{Subscriptions: subs}); err != nil {
		t.Fatal(err)
	}
	s.leave()
	allGone(t, site)
}

// allGone waits until the broker has no client connected: a message published before it has
// read a DISCONNECT may still go to the leaving connection, and be acknowledged there.
func allGone(t *testing.T, site *sitetest.Site) {
	t.Helper()
	mqtttest.WaitFor(t, 15*time.Second, "every client disconnected", func() bool {
		return metrictest.Value(t, site.Registry(), "sluice_broker_clients", "", "") == 0
	})
}

// TestMQTTStateSurvivesRestart: a persistent session (clean start off, session expiry 1 h),
// the QoS 1 message queued for it while it was away and a retained message are all there
// after a graceful restart on the same data dir; a session whose expiry passed while Sluice
// was down is not.
func TestMQTTStateSurvivesRestart(t *testing.T) {
	cfg := sitetest.Config(t)
	site := sitetest.Start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	subscribeAway(ctx, t, site, "keeper", paho5.SubscribeOptions{Topic: "cmd/keeper", QoS: 1})
	brief := dialSession(t, site.MQTTAddr, "brief", 1)
	if _, err := brief.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "cmd/brief", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	brief.leave()
	briefLeft := time.Now()

	sender := dialSession(t, site.MQTTAddr, "sender", 0)
	for _, p := range []*paho5.Publish{
		{Topic: "cfg/site", QoS: 1, Retain: true, Payload: []byte("v1")},
		{Topic: "cmd/keeper", QoS: 1, Payload: []byte("queued-1")},
		{Topic: "cmd/brief", QoS: 1, Payload: []byte("too-late")},
	} {
		if _, err := sender.Publish(ctx, p); err != nil {
			t.Fatalf("publish %s: %v", p.Topic, err)
		}
	}
	sender.leave()
	site.Stop(t)
	// The brief session's expiry (1 s) passes while Sluice is down.
	time.Sleep(time.Until(briefLeft.Add(2 * time.Second)))

	site = sitetest.Start(t, cfg)
	keeper := dialSession(t, site.MQTTAddr, "keeper", 3600)
	if !keeper.connack.SessionPresent {
		t.Fatal("keeper: CONNACK session present is false after a restart; want the session kept")
	}
	mqtttest.WaitFor(t, 15*time.Second, "the queued message", func() bool { return len(keeper.received()) > 0 })
	if got := keeper.received(); len(got) != 1 || got[0] != "cmd/keeper queued-1 retain=false" {
		t.Errorf("keeper received %q, want the message queued before the restart", got)
	}
	keeper.leave()

	brief = dialSession(t, site.MQTTAddr, "brief", 1)
	if brief.connack.SessionPresent {
		t.Error("brief: session present after its expiry passed while Sluice was down")
	}
	brief.leave()

	watcher := dialSession(t, site.MQTTAddr, "watcher", 0)
	if _, err := watcher.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "cfg/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, 15*time.Second, "the retained message", func() bool { return len(watcher.received()) > 0 })
	if got := watcher.received(); got[0] != "cfg/site v1 retain=true" {
		t.Errorf("watcher received %q, want the retained message", got)
	}
	watcher.leave()
}

// TestMQTTStateWithinBudget: retained messages beyond nats.mqtt_state_max_bytes are not stored
// (counted in sluice_broker_state_write_failures_total); the broker keeps them in memory and
// goes on taking publishes.
func TestMQTTStateWithinBudget(t *testing.T) {
	cfg := sitetest.Config(t)
	cfg.NATS.MQTTStateMaxBytes = 1 << 20
	site := sitetest.Start(t, cfg)
	sender := dialSession(t, site.MQTTAddr, "filler", 0)
	defer sender.leave()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	payload := make([]byte, 16<<10)
	for i := 0; i < 100; i++ { // 1.6 MB of retained messages
		if _, err := sender.Publish(ctx, &paho5.Publish{Topic: fmt.Sprintf("cfg/big/%d", i), QoS: 1, Retain: true, Payload: payload}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if got := metrictest.Value(t, site.Registry(), "sluice_broker_state_write_failures_total", "", ""); got == 0 {
		t.Error("sluice_broker_state_write_failures_total is 0 after 1.6 MB of retained messages into a 1 MiB budget")
	}
	watcher := dialSession(t, site.MQTTAddr, "watcher", 0)
	defer watcher.leave()
	if _, err := watcher.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "cfg/big/99", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, 15*time.Second, "the last retained message, kept in memory", func() bool { return len(watcher.received()) == 1 })
}

// handoffEntry is a hand-off journal entry as the broker writes it (broker/handoff.go).
type handoffEntry struct {
	storage.Message
	Key string `json:"key"`
}

// withState opens the buffer of a stopped site on its data dir and runs f on its MQTT state.
func withState(t *testing.T, cfg edge.Config, f func(st *sink.MQTTState)) {
	t.Helper()
	b, err := sink.NewBuffer(cfg.NATS, cfg.DataDir, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	f(b.MQTTState())
}

// TestHandoffCutShortIsQueuedAtStart: journal entries left in the MQTT state, as a SIGKILL
// between a PUBACK and the hand-off leaves them, are queued at start-up into the persistent
// sessions they are due to by the subscriptions as they stand (Retain As Published, No Local
// of the publisher's own subscription), then deleted.
func TestHandoffCutShortIsQueuedAtStart(t *testing.T) {
	cfg := sitetest.Config(t)
	site := sitetest.Start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	subscribeAway(ctx, t, site, "keeper",
		paho5.SubscribeOptions{Topic: "cmd/keeper/#", QoS: 1, RetainAsPublished: true},
		paho5.SubscribeOptions{Topic: "own/#", QoS: 1, NoLocal: true})
	site.Stop(t)

	now := time.Now().Unix()
	entry := func(key, origin, topic, payload string, retain bool) handoffEntry {
		return handoffEntry{Key: key, Message: storage.Message{ID: key, T: "handoff", Client: origin, Origin: origin,
			TopicName: topic, Payload: []byte(payload), Created: now, PacketID: 7,
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: retain}}}
	}
	withState(t, cfg, func(st *sink.MQTTState) {
		for _, e := range []handoffEntry{
			entry("hof.a", "sender", "cmd/keeper/x", "cut-short", true),
			entry("hof.b", "keeper", "own/y", "own", false), // No Local: not for the keeper
			entry("hof.c", "sender", "own/z", "theirs", false),
			entry("hof.d", "sender", "nobody/w", "unmatched", false),
		} {
			data, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Put(e.Key, data); err != nil {
				t.Fatal(err)
			}
		}
	})

	site = sitetest.Start(t, cfg)
	keeper := dialSession(t, site.MQTTAddr, "keeper", 3600)
	if !keeper.connack.SessionPresent {
		t.Fatal("keeper: session not present after the restart")
	}
	mqtttest.WaitFor(t, 15*time.Second, "the queued messages", func() bool { return len(keeper.received()) >= 2 })
	sender := dialSession(t, site.MQTTAddr, "sender", 0)
	if _, err := sender.Publish(ctx, &paho5.Publish{Topic: "cmd/keeper/end", QoS: 1, Payload: []byte("marker")}); err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, 15*time.Second, "the marker", func() bool {
		got := keeper.received()
		return got[len(got)-1] == "cmd/keeper/end marker retain=false"
	})
	got := keeper.received()
	sort.Strings(got[:len(got)-1])
	if want := []string{"cmd/keeper/x cut-short retain=true", "own/z theirs retain=false", "cmd/keeper/end marker retain=false"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("keeper received %q, want %q", got, want)
	}
	sender.leave()
	keeper.leave()
	site.Stop(t)
	withState(t, cfg, func(st *sink.MQTTState) {
		left, err := st.Load("hof.")
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 0 {
			t.Errorf("%d journal entries left after start-up, want 0", len(left))
		}
	})
}

// TestResumedSessionKeepsQueuedMessages: a persistent session resumed by a new connection
// takes its queued messages along: they are neither counted as dropped nor deleted from the
// MQTT state, so that a message received but not acknowledged before a restart is sent again
// after it.
func TestResumedSessionKeepsQueuedMessages(t *testing.T) {
	cfg := sitetest.Config(t)
	site := sitetest.Start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	subscribeAway(ctx, t, site, "keeper", paho5.SubscribeOptions{Topic: "cmd/keeper", QoS: 1})
	sender := dialSession(t, site.MQTTAddr, "sender", 0)
	if _, err := sender.Publish(ctx, &paho5.Publish{Topic: "cmd/keeper", QoS: 1, Payload: []byte("queued-1")}); err != nil {
		t.Fatal(err)
	}
	sender.leave()

	// The session is resumed, twice (a reconnect, then a takeover of a live connection); the
	// message is received and never acknowledged.
	first := dialSessionAck(t, site.MQTTAddr, "keeper", 3600, false)
	mqtttest.WaitFor(t, 15*time.Second, "the queued message", func() bool { return len(first.received()) == 1 })
	second := dialSessionAck(t, site.MQTTAddr, "keeper", 3600, false)
	mqtttest.WaitFor(t, 15*time.Second, "the queued message again", func() bool { return len(second.received()) == 1 })
	if got := metrictest.Value(t, site.Registry(), "sluice_broker_outbound_dropped_total", "reason", "session_ended"); got != 0 {
		t.Errorf("sluice_broker_outbound_dropped_total{reason=session_ended} = %v after resuming a session, want 0", got)
	}
	second.leave()
	site.Stop(t)

	site = sitetest.Start(t, cfg)
	keeper := dialSession(t, site.MQTTAddr, "keeper", 3600)
	defer keeper.leave()
	mqtttest.WaitFor(t, 15*time.Second, "the unacknowledged message after a restart", func() bool { return len(keeper.received()) == 1 })
	if got := keeper.received(); got[0] != "cmd/keeper queued-1 retain=false" {
		t.Errorf("keeper received %q, want the message it never acknowledged", got)
	}
}

// TestHandoffRefusedWhenStateFull: when the MQTT state's budget is used up, a publish due to
// a persistent session cannot be journalled and is refused (PUBACK 0x97), never acknowledged
// and then lost; the failure is counted. A publish no persistent session is due is taken.
func TestHandoffRefusedWhenStateFull(t *testing.T) {
	cfg := sitetest.Config(t)
	cfg.NATS.MQTTStateMaxBytes = 1 << 20
	site := sitetest.Start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	subscribeAway(ctx, t, site, "keeper", paho5.SubscribeOptions{Topic: "cmd/keeper", QoS: 1})
	sender := dialSession(t, site.MQTTAddr, "filler", 0)
	defer sender.leave()
	payload := make([]byte, 16<<10)
	for i := 0; metrictest.Value(t, site.Registry(), "sluice_broker_state_write_failures_total", "", "") == 0; i++ {
		if i == 200 {
			t.Fatal("no state write failed after 3.2 MB of retained messages into a 1 MiB budget")
		}
		if _, err := sender.Publish(ctx, &paho5.Publish{Topic: fmt.Sprintf("cfg/big/%d", i), QoS: 1, Retain: true, Payload: payload}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	failures := metrictest.Value(t, site.Registry(), "sluice_broker_state_write_failures_total", "", "")
	pr, err := sender.Publish(ctx, &paho5.Publish{Topic: "cmd/keeper", QoS: 1, Payload: payload})
	if pr == nil || pr.ReasonCode != 0x97 {
		t.Errorf("publish due to the offline session with the state full: %+v, %v; want PUBACK reason 0x97", pr, err)
	}
	if got := metrictest.Value(t, site.Registry(), "sluice_broker_state_write_failures_total", "", ""); got <= failures {
		t.Errorf("sluice_broker_state_write_failures_total = %v after a refused journal entry, want more than %v", got, failures)
	}
	if pr, err := sender.Publish(ctx, &paho5.Publish{Topic: "cmd/nobody", QoS: 1, Payload: []byte("x")}); err != nil || pr.ReasonCode != 0 {
		t.Errorf("publish no persistent session is due: %+v, %v; want PUBACK 0x00", pr, err)
	}
}

// TestRetainHandlingAfterRestart: a subscription restored with its session after a restart
// exists for Retain Handling: subscribing again with 1 sends no retained message, with 0 it
// does; Retain Handling 2 never does.
func TestRetainHandlingAfterRestart(t *testing.T) {
	cfg := sitetest.Config(t)
	site := sitetest.Start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	subscribe := func(s *session5, rh byte) {
		t.Helper()
		if _, err := s.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "cfg/#", QoS: 1, RetainHandling: rh}}}); err != nil {
			t.Fatal(err)
		}
	}
	other := dialSession(t, site.MQTTAddr, "other", 0)
	if _, err := other.Publish(ctx, &paho5.Publish{Topic: "cfg/site", QoS: 1, Retain: true, Payload: []byte("v1")}); err != nil {
		t.Fatal(err)
	}
	other.leave()
	one := dialSession(t, site.MQTTAddr, "rh1", 3600)
	subscribe(one, 1)
	mqtttest.WaitFor(t, 15*time.Second, "the retained message on a new subscription", func() bool { return len(one.received()) == 1 })
	// Its PUBACK leaves the client after the message is recorded: leaving before the broker has
	// it would keep the message in flight, to be sent again after the restart.
	mqtttest.WaitFor(t, 15*time.Second, "the retained message acknowledged", func() bool {
		return metrictest.Value(t, site.Registry(), "sluice_broker_inflight_messages", "", "") == 0
	})
	one.leave()
	zero := dialSession(t, site.MQTTAddr, "rh0", 3600)
	subscribe(zero, 2)
	zero.leave()
	site.Stop(t)

	site = sitetest.Start(t, cfg)
	one = dialSession(t, site.MQTTAddr, "rh1", 3600)
	defer one.leave()
	zero = dialSession(t, site.MQTTAddr, "rh0", 3600)
	defer zero.leave()
	if !one.connack.SessionPresent || !zero.connack.SessionPresent {
		t.Fatal("sessions not present after the restart")
	}
	subscribe(one, 1)  // the restored subscription exists: nothing sent
	subscribe(zero, 0) // sent whether it exists or not
	other = dialSession(t, site.MQTTAddr, "other", 0)
	defer other.leave()
	if _, err := other.Publish(ctx, &paho5.Publish{Topic: "cfg/end", QoS: 1, Payload: []byte("marker")}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s    *session5
		want []string
	}{
		{one, []string{"cfg/end marker retain=false"}},
		{zero, []string{"cfg/site v1 retain=true", "cfg/end marker retain=false"}},
	} {
		mqtttest.WaitFor(t, 15*time.Second, "the marker", func() bool {
			got := c.s.received()
			return len(got) > 0 && got[len(got)-1] == "cfg/end marker retain=false"
		})
		if got := c.s.received(); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("received %q, want %q", got, c.want)
		}
	}
}
