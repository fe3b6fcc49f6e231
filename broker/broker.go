// Package broker owns the embedded MQTT server (mochi-mqtt): its listeners, capabilities and
// limits, authentication, and the bridge of its logs into zerolog. It knows no ingest logic:
// hooks are handed to it by the caller, in order.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Broker is the embedded MQTT broker. Build it with New, add hooks with AddHook, then Run.
type Broker struct {
	cfg       Config
	log       zerolog.Logger
	m         *metrics
	srv       *mqtt.Server
	listeners []listeners.Listener
	deliver   *deliverer
	gate      chan struct{} // closed once the state is restored: the listeners accept from then on
	closeOnce sync.Once
	closeErr  error
}

// New validates cfg and builds the broker, its listeners and its own hooks (authentication
// and ACL, limits, drop visibility) without opening any socket; it reads the users file and
// the TLS files. Its metrics are registered on reg.
func New(cfg Config, log zerolog.Logger, reg prometheus.Registerer) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log = log.With().Str("component", "broker").Logger()
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClients = int64(cfg.MaxClients)
	caps.MaximumPacketSize = uint32(cfg.MaxPacketSize)
	caps.MaximumClientWritesPending = int32(cfg.MaxPendingWrites)
	caps.ReceiveMaximum = uint16(cfg.ReceiveMaximum)
	caps.MaximumInflight = uint16(cfg.MaxInflight)
	caps.MaximumSessionExpiryInterval = uint32(cfg.MaxSessionExpiry.Seconds())
	caps.TopicAliasMaximum = topicAliasMaximum
	// Real clients (paho among them) reject acknowledgements that echo the publisher's user
	// properties. The broker closes the socket after a DISCONNECT it sends, as the spec says
	// (PassiveClientDisconnect off), and a refused subscription reports 0x87 Not authorized
	// to MQTT 5 clients rather than hiding it as 0x80 (ObscureNotAuthorized off).
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	caps.Compatibilities.PassiveClientDisconnect = false
	caps.Compatibilities.ObscureNotAuthorized = false
	srv := mqtt.New(&mqtt.Options{
		Capabilities:             caps,
		ClientNetWriteBufferSize: int(cfg.WriteBufferSize),
		ClientNetReadBufferSize:  int(cfg.ReadBufferSize),
		// mochi warns once per dropped message on some paths ("client store quota reached"):
		// its warnings are sampled; the drops themselves are counted by the drops hook.
		Logger: newSlog(log.Sample(&zerolog.LevelSampler{
			WarnSampler: &zerolog.BurstSampler{Burst: 20, Period: 10 * time.Second},
		})),
		InlineClient: false,
	})
	m := newMetrics(reg, srv)
	b := &Broker{cfg: cfg, log: log, srv: srv, m: m, gate: make(chan struct{})}
	// Room for max_clients connected clients plus 10 % handshaking: beyond, mochi would
	// refuse at CONNECT anyway, after spending two goroutines and the TLS handshake on it.
	slots := make(chan struct{}, maxConnections(cfg.MaxClients))
	for i, l := range cfg.Listeners {
		var tc *tls.Config
		if l.Type == "tls" || l.Type == "wss" {
			var err error
			if tc, err = l.TLS.build(); err != nil {
				return nil, fmt.Errorf("listeners[%d].tls: %w", i, err)
			}
		}
		ln := newListener(listenerID(l, i), l.Type, l.Address, tc, cfg.ConnectTimeout, slots, m.connRefused)
		ln.gate, ln.closeClients = b.gate, b.closeClients
		b.listeners = append(b.listeners, ln)
	}
	auth, err := newAuthHook(cfg, m, log)
	if err != nil {
		return nil, err
	}
	b.deliver = &deliverer{srv: srv, acl: auth.OnACLCheck, m: m, now: time.Now}
	for _, h := range []mqtt.Hook{
		auth,
		&limitsHook{maxKeepAlive: keepAliveSeconds(cfg.MaxKeepAlive), maxPacketSize: uint32(cfg.MaxPacketSize), m: m,
			warn: log.Sample(&zerolog.BurstSampler{Burst: 10, Period: 10 * time.Second})},
		newDropsHook(m, log),
		newAliasHook(srv),
		&noLocalHook{d: b.deliver, log: log},
	} {
		if err := b.AddHook(h, nil); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Persist keeps persistent sessions, their subscriptions and queued QoS 1/2 messages, and
// retained messages in store, and restores them when the broker starts (the store must be
// usable by then). Call before Run, after the hooks that may refuse a publish: a publish due
// to a persistent session is journalled by the last OnPublish hook (handoff.go).
func (b *Broker) Persist(store StateStore) error {
	h := newPersistHook(b.srv, store, b.cfg.MaxSessionExpiry, b.m, b.log)
	if err := b.AddHook(h, nil); err != nil {
		return err
	}
	b.deliver.persist = h
	return nil
}

// AddHook adds a hook; hooks run in the order they are added. Call before Run.
func (b *Broker) AddHook(h mqtt.Hook, config any) error {
	if err := b.srv.AddHook(h, config); err != nil {
		return fmt.Errorf("broker: add hook %s: %w", h.ID(), err)
	}
	return nil
}

// Start opens the listeners and starts serving in the background.
func (b *Broker) Start() error {
	for _, l := range b.listeners {
		if err := b.srv.AddListener(l); err != nil {
			return fmt.Errorf("broker: listen %s on %s: %w", l.ID(), l.Address(), err)
		}
	}
	// mochi restores the MQTT state in Serve; the listeners accept once the hand-offs a kill
	// cut short are queued too.
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("broker: serve: %w", err)
	}
	if b.deliver.persist != nil {
		b.deliver.persist.queueLeftovers(b.deliver)
	}
	close(b.gate)
	for _, l := range b.listeners {
		b.log.Info().Str("listener", l.ID()).Str("protocol", l.Protocol()).Str("address", l.Address()).Msg("mqtt listening")
	}
	return nil
}

// Addrs returns the bound address of each listener, in config order (useful with port 0).
func (b *Broker) Addrs() []string {
	out := make([]string, len(b.listeners))
	for i, l := range b.listeners {
		out[i] = l.Address()
	}
	return out
}

// Clients returns the number of connected clients.
func (b *Broker) Clients() int64 { return atomic.LoadInt64(&b.srv.Info.ClientsConnected) }

// Run starts the broker and blocks until ctx is cancelled, then closes it.
func (b *Broker) Run(ctx context.Context) error {
	if err := b.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	return b.Close()
}

// Close stops the listeners and disconnects every client. It is idempotent.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		if err := b.srv.Close(); err != nil && !errors.Is(err, context.Canceled) {
			b.closeErr = fmt.Errorf("broker: close: %w", err)
		}
	})
	return b.closeErr
}

// closeClients disconnects the clients of one listener. (mochi's own way, through
// Clients.GetByListener, takes the clients' read lock twice in a row, which deadlocks when a
// client connecting or leaving waits for the write lock in between.)
func (b *Broker) closeClients(listener string) {
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.Net.Listener == listener && !cl.Closed() {
			_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// maxConnections is how many connections may be open at once, connected or still in their
// TLS/WebSocket handshake or CONNECT.
func maxConnections(maxClients int) int { return maxClients + maxClients/10 + 16 }
