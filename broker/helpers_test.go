package broker_test

import (
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/sluice-iot/sluice/broker"
	"github.com/sluice-iot/sluice/internal/metrictest"
)

// testBroker is a running broker with its metrics.
type testBroker struct {
	*broker.Broker
	reg *prometheus.Registry
}

func testLogger() zerolog.Logger {
	level := zerolog.ErrorLevel
	if testing.Verbose() {
		level = zerolog.DebugLevel
	}
	return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(level).With().Timestamp().Logger()
}

// start runs a broker built from cfg until the test ends.
func start(t testing.TB, cfg broker.Config) *testBroker {
	t.Helper()
	reg := prometheus.NewRegistry()
	b, err := broker.New(cfg, testLogger(), reg)
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	if err := b.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return &testBroker{Broker: b, reg: reg}
}

// counter returns the value of a counter (or gauge) with the given label value, 0 if absent.
func (b *testBroker) counter(t testing.TB, name, label, value string) float64 {
	t.Helper()
	return metrictest.Value(t, b.reg, name, label, value)
}

// hash makes a bcrypt hash at the cheapest cost, to keep tests fast.
func hash(t testing.TB, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// authConfig is a broker on one loopback TCP listener, anonymous access off, with two devices
// (dev-1, dev-2, password "secret-<name>") that may publish only under sensors/<own name>/,
// and a monitor that may subscribe to sensors/#.
func authConfig(t testing.TB) broker.Config {
	cfg := broker.DefaultConfig()
	cfg.Listeners[0].Address = "127.0.0.1:0"
	cfg.AllowAnonymous = false
	cfg.Auth.Users = []broker.UserConfig{
		{Username: "dev-1", PasswordHash: hash(t, "secret-dev-1")},
		{Username: "dev-2", PasswordHash: hash(t, "secret-dev-2")},
		{Username: "monitor", PasswordHash: hash(t, "secret-monitor"), ACL: []broker.ACLRule{{Topic: "sensors/#", Access: "subscribe"}}},
	}
	cfg.Auth.ACL = []broker.ACLRule{{Topic: "sensors/%u/#", Access: "publish"}}
	return cfg
}

// connect3 connects an MQTT 3.1.1 client (paho.mqtt.golang).
func connect3(t testing.TB, url, id, user, password string, tc *tls.Config) (paho.Client, error) {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(user).SetPassword(password).
		SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4).SetConnectTimeout(10 * time.Second)
	if tc != nil {
		opts.SetTLSConfig(tc)
	}
	cl := paho.NewClient(opts)
	tok := cl.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return nil, fmt.Errorf("connect %s: timed out", id)
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { cl.Disconnect(50) })
	return cl, nil
}

// collector subscribes an MQTT 3.1.1 client and gathers "topic payload" strings.
type collector struct {
	mu  sync.Mutex
	got []string
}

func (c *collector) handler(_ paho.Client, m paho.Message) {
	c.mu.Lock()
	c.got = append(c.got, m.Topic()+" "+string(m.Payload()))
	c.mu.Unlock()
}

func (c *collector) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

func containsErr(err error, sub string) bool {
	return err != nil && strings.Contains(err.Error(), sub)
}
