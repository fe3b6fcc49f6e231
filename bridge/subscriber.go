// Package bridge makes Sluice an MQTT client of other brokers (a network server's): each
// subscription feeds the messages it receives into the same ingest pipeline as the embedded
// broker, and acknowledges each only once it is stored. It holds no ingest logic.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/sluice-iot/sluice/hooks"
)

// Config makes Sluice an MQTT client of another broker (a network server's), fed into
// the same ingest pipeline as its own broker: routes apply to the topics received.
type Config struct {
	// Name identifies the subscription in logs and metrics.
	Name string `yaml:"name"`
	// Broker is the URL of the broker: tcp://host:1883, ssl://host:8883, ws://host/mqtt.
	Broker   string `yaml:"broker"`
	ClientID string `yaml:"client_id"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Topics are the filters subscribed to, e.g. application/+/device/+/event/+.
	Topics []string `yaml:"topics"`
	// QoS of the subscriptions: 1 (default; nothing acknowledged before it is stored) or 0.
	QoS int `yaml:"qos"`
	// CleanSession false (default) keeps the session on the broker while Sluice is away: the
	// messages published meanwhile are delivered when it reconnects.
	CleanSession bool          `yaml:"clean_session"`
	KeepAlive    time.Duration `yaml:"keep_alive"`
	// ConnectTimeout bounds one connection attempt; attempts are retried forever, backing off
	// up to MaxReconnectInterval.
	ConnectTimeout       time.Duration `yaml:"connect_timeout"`
	MaxReconnectInterval time.Duration `yaml:"max_reconnect_interval"`
}

// DefaultConfig returns the defaults of one subscription.
func DefaultConfig() Config {
	return Config{QoS: 1, KeepAlive: 30 * time.Second, ConnectTimeout: 10 * time.Second, MaxReconnectInterval: 30 * time.Second}
}

// Validate reports every problem of c.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name: required"))
	}
	if u, err := url.Parse(c.Broker); err != nil || u.Host == "" {
		errs = append(errs, fmt.Errorf("broker: %q is not a URL like tcp://host:1883", c.Broker))
	} else {
		switch u.Scheme {
		case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
		default:
			errs = append(errs, fmt.Errorf("broker: scheme %q is not one of tcp, ssl, ws, wss", u.Scheme))
		}
	}
	if c.ClientID == "" && !c.CleanSession {
		errs = append(errs, errors.New("client_id: required for a persistent session (clean_session false)"))
	}
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("topics: at least one filter is required"))
	}
	for i, t := range c.Topics {
		if t == "" || strings.Contains(t, "{") {
			errs = append(errs, fmt.Errorf("topics[%d]: %q is not an MQTT filter", i, t))
		}
	}
	if c.QoS != 0 && c.QoS != 1 {
		errs = append(errs, fmt.Errorf("qos: %d is not 0 or 1", c.QoS))
	}
	if c.KeepAlive < time.Second {
		errs = append(errs, errors.New("keep_alive: must be at least 1s"))
	}
	if c.ConnectTimeout <= 0 {
		errs = append(errs, errors.New("connect_timeout: must be positive"))
	}
	if c.MaxReconnectInterval <= 0 {
		errs = append(errs, errors.New("max_reconnect_interval: must be positive"))
	}
	return errors.Join(errs...)
}

// UnmarshalYAML fills the keys a subscription leaves out with their defaults.
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	type plain Config
	p := plain(DefaultConfig())
	if err := n.Decode(&p); err != nil {
		return err
	}
	*c = Config(p)
	return nil
}

// Handler is the ingest pipeline a subscription feeds: *hooks.Ingest.
type Handler interface {
	Handle(ctx context.Context, msg *hooks.Message) error
}

// Subscriber is one subscription to another broker. Each QoS 1 message is acknowledged
// (PUBACK) only once Handle has stored it; while the buffer refuses it the subscriber retries
// with backoff and holds the PUBACK, so the broker keeps the message. The messages in flight
// are bounded by the broker's limit on unacknowledged messages (Mosquitto: 20).
type Subscriber struct {
	cfg  Config
	h    Handler
	log  zerolog.Logger
	warn zerolog.Logger
	m    *subscriptionMetrics
}

// New builds a subscription; it connects in Run.
func New(cfg Config, h Handler, log zerolog.Logger, m *Metrics) (*Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log = log.With().Str("component", "subscriber").Str("subscription", cfg.Name).Logger()
	return &Subscriber{cfg: cfg, h: h, log: log, m: m.forName(cfg.Name),
		warn: log.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Second})}, nil
}

// Run connects, subscribes, and handles messages until ctx ends; it reconnects by itself. It
// waits for the handlers in flight before it returns; their unacknowledged messages are
// delivered again on the next connection.
func (s *Subscriber) Run(ctx context.Context) error {
	var inflight sync.WaitGroup
	handle := func(_ paho.Client, pm paho.Message) {
		inflight.Add(1)
		defer inflight.Done()
		s.handle(ctx, pm)
	}
	o := paho.NewClientOptions().
		AddBroker(s.cfg.Broker).
		SetClientID(s.cfg.ClientID).
		SetUsername(s.cfg.Username).
		SetPassword(s.cfg.Password).
		SetCleanSession(s.cfg.CleanSession).
		SetKeepAlive(s.cfg.KeepAlive).
		SetConnectTimeout(s.cfg.ConnectTimeout).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(s.cfg.MaxReconnectInterval).
		SetOrderMatters(false). // handlers block until stored: each runs on its own goroutine
		SetAutoAckDisabled(true).
		SetDefaultPublishHandler(handle)
	filters := make(map[string]byte, len(s.cfg.Topics))
	for _, t := range s.cfg.Topics {
		filters[t] = byte(s.cfg.QoS)
	}
	o.SetOnConnectHandler(func(c paho.Client) {
		s.m.connects.Inc()
		s.log.Info().Str("broker", s.cfg.Broker).Msg("connected")
		// Subscribing again on every connection is harmless with a persistent session and
		// needed when the broker lost it.
		go func() {
			tok := c.SubscribeMultiple(filters, handle)
			if !tok.WaitTimeout(s.cfg.ConnectTimeout) || tok.Error() != nil {
				s.log.Error().Err(tok.Error()).Strs("topics", s.cfg.Topics).Msg("subscribe failed; retried on the next connection")
				return
			}
			s.m.connected.Set(1)
		}()
	})
	o.SetConnectionLostHandler(func(_ paho.Client, err error) {
		s.m.connected.Set(0)
		s.log.Warn().Err(err).Msg("connection lost; reconnecting")
	})
	c := paho.NewClient(o)
	c.Connect() // with ConnectRetry it keeps trying in the background
	<-ctx.Done()
	c.Disconnect(250)
	inflight.Wait()
	s.m.connected.Set(0)
	return nil
}

// handle stores one message, retrying while the pipeline refuses it, and acknowledges it once
// stored. When ctx ends first the message is left unacknowledged for the next connection.
func (s *Subscriber) handle(ctx context.Context, pm paho.Message) {
	msg := hooks.Message{Client: "subscriber:" + s.cfg.Name, Topic: pm.Topic(), Payload: pm.Payload(), QoS: pm.Qos(), PacketID: pm.MessageID()}
	backoff := 50 * time.Millisecond
	for {
		err := s.h.Handle(ctx, &msg)
		if err == nil {
			pm.Ack()
			s.m.messages.WithLabelValues("stored").Inc()
			return
		}
		s.m.messages.WithLabelValues("retried").Inc()
		s.warn.Warn().Err(err).Str("topic", msg.Topic).Dur("backoff", backoff).Msg("not stored; retrying before acknowledging")
		select {
		case <-ctx.Done():
			s.m.messages.WithLabelValues("abandoned").Inc()
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Metrics are the metrics of every subscription, labelled by subscription name.
type Metrics struct {
	messages  *prometheus.CounterVec
	connected *prometheus.GaugeVec
	connects  *prometheus.CounterVec
}

type subscriptionMetrics struct {
	messages  *prometheus.CounterVec
	connected prometheus.Gauge
	connects  prometheus.Counter
}

// NewMetrics registers the subscription metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_subscriber_messages_total",
			Help: "Messages received from subscriptions to other brokers, by subscription and result (stored, retried: the pipeline refused it and it is tried again, abandoned: left unacknowledged at shutdown).",
		}, []string{"subscription", "result"}),
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_subscriber_connected",
			Help: "1 while the subscription is connected to its broker and subscribed.",
		}, []string{"subscription"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_subscriber_connects_total",
			Help: "Successful connections (first and reconnections) of each subscription.",
		}, []string{"subscription"}),
	}
	reg.MustRegister(m.messages, m.connected, m.connects)
	return m
}

func (m *Metrics) forName(name string) *subscriptionMetrics {
	msgs, _ := m.messages.CurryWith(prometheus.Labels{"subscription": name})
	for _, r := range []string{"stored", "retried", "abandoned"} { // every series exists from the start, at 0
		msgs.WithLabelValues(r)
	}
	return &subscriptionMetrics{messages: msgs, connected: m.connected.WithLabelValues(name), connects: m.connects.WithLabelValues(name)}
}
