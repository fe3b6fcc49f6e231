package bridge

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice/hooks"
	"github.com/sluice-iot/sluice/internal/metrictest"
	"github.com/sluice-iot/sluice/internal/mqtttest"
)

// handlerFunc adapts a function to Handler.
type handlerFunc func(ctx context.Context, msg *hooks.Message) error

func (f handlerFunc) Handle(ctx context.Context, msg *hooks.Message) error { return f(ctx, msg) }

const localMosquitto = "127.0.0.1:1883"

func runSubscriber(t *testing.T, cfg Config, h Handler, m *Metrics) (stop func()) {
	t.Helper()
	s, err := New(cfg, h, zerolog.Nop(), m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// A message the pipeline refuses is not acknowledged: the broker keeps it in the persistent
// session and delivers it again when Sluice comes back, and it is stored then.
func TestSubscriberAcksOnlyStoredMessages(t *testing.T) {
	if c, err := net.Dial("tcp", localMosquitto); err != nil {
		t.Fatalf("no Mosquitto on %s: %v", localMosquitto, err)
	} else {
		c.Close()
	}
	topic := "sluice-test-" + nuid.Next() + "/up"
	cfg := DefaultConfig()
	cfg.Name, cfg.Broker, cfg.ClientID, cfg.Topics = "ns", "tcp://"+localMosquitto, "sluice-"+nuid.Next(), []string{topic}

	refused := make(chan struct{}, 100)
	m := NewMetrics(prometheus.NewRegistry())
	stop := runSubscriber(t, cfg, handlerFunc(func(context.Context, *hooks.Message) error {
		refused <- struct{}{}
		return errors.New("buffer full")
	}), m)
	waitSubscribed(t, m)
	pub := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + localMosquitto).SetClientID("pub-" + nuid.Next()))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	if tok := pub.Publish(topic, 1, false, "reading"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case <-refused:
	case <-time.After(10 * time.Second):
		t.Fatal("the message never reached the pipeline")
	}
	stop() // Sluice goes away with the message unacknowledged

	var mu sync.Mutex
	var stored []string
	got := make(chan struct{}, 10)
	stop = runSubscriber(t, cfg, handlerFunc(func(_ context.Context, m *hooks.Message) error {
		mu.Lock()
		stored = append(stored, string(m.Payload))
		mu.Unlock()
		got <- struct{}{}
		return nil
	}), NewMetrics(prometheus.NewRegistry()))
	defer stop()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the unacknowledged message was not delivered again")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(stored) != 1 || stored[0] != "reading" {
		t.Errorf("stored %q, want [reading]", stored)
	}
}

func TestSubscriberConfigValidate(t *testing.T) {
	c := DefaultConfig()
	c.Broker, c.QoS, c.KeepAlive, c.Topics = "udp://x:1", 2, 0, []string{"a/{device}"}
	want := "name: required\n" +
		"broker: scheme \"udp\" is not one of tcp, ssl, ws, wss\n" +
		"client_id: required for a persistent session (clean_session false)\n" +
		"topics[0]: \"a/{device}\" is not an MQTT filter\n" +
		"qos: 2 is not 0 or 1\n" +
		"keep_alive: must be at least 1s"
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

// waitSubscribed waits until the subscription "ns" holds its subscriptions on the broker.
func waitSubscribed(t *testing.T, m *Metrics) {
	t.Helper()
	mqtttest.WaitFor(t, 10*time.Second, "the subscription to be subscribed", func() bool {
		return metrictest.Counter(t, m.connected.WithLabelValues("ns")) == 1
	})
}
