package broker_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
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

// client5 is an MQTT 5 client (paho.golang) and what it received.
type client5 struct {
	*paho5.Client
	connack *paho5.Connack
	mu      sync.Mutex
	got     []string // "topic payload"
	lost    chan error
}

// connect5 connects an MQTT 5 client over TCP.
func connect5(t testing.TB, addr, id, user, password string) (*client5, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &client5{lost: make(chan error, 1)}
	c.Client = paho5.NewClient(paho5.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){func(pr paho5.PublishReceived) (bool, error) {
			c.mu.Lock()
			c.got = append(c.got, pr.Packet.Topic+" "+string(pr.Packet.Payload))
			c.mu.Unlock()
			return true, nil
		}},
		OnClientError: func(err error) {
			select {
			case c.lost <- err:
			default:
			}
		},
		OnServerDisconnect: func(d *paho5.Disconnect) {
			select {
			case c.lost <- fmt.Errorf("server disconnect 0x%02x", d.ReasonCode):
			default:
			}
		},
	})
	cp := &paho5.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}
	if user != "" {
		cp.Username, cp.UsernameFlag = user, true
		cp.Password, cp.PasswordFlag = []byte(password), true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	c.connack = ca
	if err != nil {
		conn.Close()
		return c, err
	}
	t.Cleanup(func() { c.Disconnect(&paho5.Disconnect{ReasonCode: 0}) })
	return c, nil
}

func (c *client5) received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
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

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func containsErr(err error, sub string) bool {
	return err != nil && strings.Contains(err.Error(), sub)
}
