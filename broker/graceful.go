package broker

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"time"
)

// Closing a TCP connection whose receive buffer still holds data makes the kernel send a
// reset instead of a FIN, and a reset destroys what the peer has not read yet: a client that
// broke a limit while it kept sending (more publishes than its Receive Maximum, a packet too
// large) met a reset and never read the DISCONNECT that said why. gracefulConn closes in
// order: it stops reading for the broker, sends FIN after what was written (half close), and
// discards what the client still sends for a moment, up to a bound, before it closes.
const (
	lingerTime  = time.Second
	lingerBytes = 1 << 20
)

type gracefulConn struct {
	net.Conn
	mu      sync.Mutex
	closing bool
	reading int        // Reads in progress for the broker
	idle    *sync.Cond // signalled when reading drops to 0 while closing
	once    sync.Once
}

func newGracefulConn(c net.Conn) net.Conn {
	g := &gracefulConn{Conn: c}
	g.idle = sync.NewCond(&g.mu)
	if tc, ok := c.(*tls.Conn); ok {
		return gracefulTLSConn{g, tc}
	}
	return g
}

// gracefulTLSConn keeps the TLS state visible, for client certificates.
type gracefulTLSConn struct {
	*gracefulConn
	tc *tls.Conn
}

func (c gracefulTLSConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// Read reads for the broker; once Close has been called it reads nothing more.
func (c *gracefulConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	c.reading++
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reading--
	if c.closing {
		c.idle.Broadcast()
		return 0, net.ErrClosed // what arrived after Close is discarded
	}
	return n, err
}

// Close returns at once; the connection is closed within lingerTime.
func (c *gracefulConn) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		c.Conn.SetReadDeadline(time.Now()) // wakes a Read in progress
		go c.linger()
	})
	return nil
}

func (c *gracefulConn) linger() {
	c.mu.Lock()
	for c.reading > 0 {
		c.idle.Wait()
	}
	c.mu.Unlock()
	switch w := c.Conn.(type) {
	case *net.TCPConn:
		w.CloseWrite()
	case *tls.Conn:
		w.CloseWrite() // close_notify
	}
	c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
	io.CopyN(io.Discard, c.Conn, lingerBytes)
	c.Conn.Close()
}
