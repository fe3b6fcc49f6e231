package broker

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/prometheus/client_golang/prometheus"
)

// listener is one MQTT listener: plain TCP, TLS, WebSocket or WebSocket over TLS. Unlike
// mochi's own listeners it binds in Init (so Address reports the bound port, also for
// WebSocket), gives every connection connect_timeout to finish its TLS handshake and send
// CONNECT (mochi waits forever), bounds the connections open at once (mochi counts only those
// past CONNECT), and exposes the TLS state of wss connections so that client certificates
// authenticate there too.
type listener struct {
	id, typ, address string
	tls              *tls.Config // nil for tcp and ws
	connectTimeout   time.Duration
	// slots is shared by all listeners: one per open connection, handshaking or connected.
	// A connection accepted when none is free is closed at once and counted in refused.
	slots   chan struct{}
	refused prometheus.Counter

	log       *slog.Logger
	ln        net.Listener
	http      *http.Server // ws and wss
	upgrader  websocket.Upgrader
	establish listeners.EstablishFn
	closed    atomic.Bool
	closeOnce sync.Once
	// gate is closed when the broker may accept connections (its state is restored);
	// connections wait in the kernel's backlog until then. done is closed by Close.
	gate, done chan struct{}
	// closeClients disconnects this listener's clients (Broker.closeClients).
	closeClients func(listener string)
}

var _ listeners.Listener = (*listener)(nil)

func newListener(id, typ, address string, tc *tls.Config, connectTimeout time.Duration, slots chan struct{}, refused prometheus.Counter) *listener {
	l := &listener{id: id, typ: typ, address: address, tls: tc, connectTimeout: connectTimeout, slots: slots, refused: refused,
		gate: make(chan struct{}), done: make(chan struct{})}
	close(l.gate) // open unless the broker sets its own
	l.upgrader = websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		// MQTT credentials travel in CONNECT, not in cookies: any web origin may connect.
		CheckOrigin: func(*http.Request) bool { return true },
		// Idle connections share write buffers instead of holding one each.
		WriteBufferPool: new(sync.Pool),
		ReadBufferSize:  1024,
		WriteBufferSize: 1024,
	}
	return l
}

// ID implements listeners.Listener.
func (l *listener) ID() string { return l.id }

// Protocol implements listeners.Listener.
func (l *listener) Protocol() string { return l.typ }

// Address implements listeners.Listener: the bound address once Init has run.
func (l *listener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.address
}

// Init implements listeners.Listener: it binds the address.
func (l *listener) Init(log *slog.Logger) error {
	l.log = log
	ln, err := net.Listen("tcp", l.address)
	if err != nil {
		return err
	}
	if l.tls != nil {
		ln = tls.NewListener(ln, l.tls)
	}
	l.ln = ln
	if l.typ == "ws" || l.typ == "wss" {
		l.http = &http.Server{Handler: http.HandlerFunc(l.upgrade), ReadHeaderTimeout: l.connectTimeout}
	}
	return nil
}

// Serve implements listeners.Listener; it returns when the listener is closed.
func (l *listener) Serve(establish listeners.EstablishFn) {
	l.establish = establish
	select {
	case <-l.gate:
	case <-l.done:
		return
	}
	if l.http != nil {
		if err := l.http.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !l.closed.Load() {
			l.log.Error("websocket listener failed", "error", err)
		}
		return
	}
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if !l.closed.Load() {
				l.log.Error("listener failed", "error", err)
			}
			return
		}
		if !l.acquire() {
			conn.Close()
			continue
		}
		conn = newGracefulConn(conn)
		// Until CONNECT is processed; mochi then sets the keep-alive deadline.
		conn.SetDeadline(time.Now().Add(l.connectTimeout))
		go func() {
			defer l.release()
			if err := establish(l.id, conn); err != nil {
				l.log.Debug("connection ended", "error", err, "remote", conn.RemoteAddr().String())
			}
		}()
	}
}

func (l *listener) upgrade(w http.ResponseWriter, r *http.Request) {
	if !l.acquire() {
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return
	}
	defer l.release()
	c, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered the request
	}
	defer c.Close()
	conn := &wsConn{Conn: c.UnderlyingConn(), ws: c}
	conn.SetDeadline(time.Now().Add(l.connectTimeout))
	if err := l.establish(l.id, conn); err != nil {
		l.log.Debug("connection ended", "error", err, "remote", r.RemoteAddr)
	}
}

func (l *listener) acquire() bool {
	select {
	case l.slots <- struct{}{}:
		return true
	default:
		l.refused.Inc()
		return false
	}
}

func (l *listener) release() { <-l.slots }

// Close implements listeners.Listener: it stops accepting, then closes this listener's
// clients (by l.closeClients when set rather than mochi's closeClients, see
// Broker.closeClients).
func (l *listener) Close(closeClients listeners.CloseFn) {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		close(l.done)
		if l.http != nil {
			l.http.Close() // closes the net.Listener; hijacked connections are the clients'
		} else if l.ln != nil {
			l.ln.Close()
		}
		if l.closeClients != nil {
			closeClients = l.closeClients
		}
		closeClients(l.id)
	})
}
