package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// publisher is one MQTT 3.1.1 connection that only publishes: the least a client can do per
// message (one buffered write, PUBACKs read by a second goroutine), so that the generator costs
// little CPU next to the broker it measures. It is not a general client: no subscriptions, no
// session state, no reconnect.
type publisher struct {
	conn   net.Conn
	w      *bufio.Writer
	qos    byte
	window chan struct{} // one token per QoS 1 publish awaiting its PUBACK

	sentAt [1 << 16]atomic.Int64 // send time (unix ns) by packet id
	nextID uint16

	mu      sync.Mutex
	latency []uint32 // PUBACK latencies in µs
	acked   atomic.Int64
	readErr error
	done    chan struct{} // closed when the reader stops
}

// dialPublisher connects and sends CONNECT with a clean session; it returns after CONNACK.
func dialPublisher(addr, clientID string, qos byte, inflight int) (*publisher, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	p := &publisher{conn: c, w: bufio.NewWriterSize(c, 64<<10), qos: qos,
		window: make(chan struct{}, inflight), done: make(chan struct{})}
	// CONNECT: protocol "MQTT" level 4, clean session, keep-alive 60 s.
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60}
	body = appendString(body, clientID)
	pkt := appendLength([]byte{0x10}, len(body))
	if _, err := c.Write(append(pkt, body...)); err != nil {
		c.Close()
		return nil, fmt.Errorf("mqtt connect: %w", err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ack [4]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("mqtt connack: %w", err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		c.Close()
		return nil, fmt.Errorf("mqtt connect refused (connack % x)", ack)
	}
	c.SetReadDeadline(time.Time{})
	go p.read()
	return p, nil
}

// publish writes one PUBLISH (buffered). For QoS 1 it first waits for a free slot in the
// in-flight window, flushing what is buffered when it has to wait.
func (p *publisher) publish(topic string, payload []byte, scratch []byte) ([]byte, error) {
	if p.qos > 0 {
		select {
		case p.window <- struct{}{}:
		default:
			if err := p.w.Flush(); err != nil {
				return scratch, err
			}
			select {
			case p.window <- struct{}{}:
			case <-p.done:
				return scratch, p.err()
			}
		}
	}
	n := 2 + len(topic) + len(payload)
	if p.qos > 0 {
		n += 2
	}
	b := appendLength(append(scratch[:0], 0x30|p.qos<<1), n)
	b = appendString(b, topic)
	if p.qos > 0 {
		p.nextID++
		if p.nextID == 0 {
			p.nextID = 1
		}
		b = append(b, byte(p.nextID>>8), byte(p.nextID))
		p.sentAt[p.nextID].Store(time.Now().UnixNano())
	}
	b = append(b, payload...)
	_, err := p.w.Write(b)
	return b, err
}

// flush sends what is buffered.
func (p *publisher) flush() error { return p.w.Flush() }

// read consumes PUBACKs (and anything else the broker sends) until the connection ends.
func (p *publisher) read() {
	defer close(p.done)
	r := bufio.NewReaderSize(p.conn, 16<<10)
	buf := make([]byte, 0, 256)
	for {
		h, err := r.ReadByte()
		if err != nil {
			p.setErr(err)
			return
		}
		n, err := readLength(r)
		if err != nil {
			p.setErr(err)
			return
		}
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			p.setErr(err)
			return
		}
		if h>>4 != 4 || n < 2 { // not a PUBACK
			continue
		}
		id := uint16(buf[0])<<8 | uint16(buf[1])
		lat := time.Now().UnixNano() - p.sentAt[id].Load()
		p.mu.Lock()
		p.latency = append(p.latency, uint32(min(lat/1e3, 1<<32-1)))
		p.mu.Unlock()
		p.acked.Add(1)
		select {
		case <-p.window:
		default:
		}
	}
}

// drain waits until every QoS 1 publish is acknowledged or timeout passes.
func (p *publisher) drain(timeout time.Duration) error {
	if err := p.w.Flush(); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for len(p.window) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d publishes unacknowledged after %v", len(p.window), timeout)
		}
		select {
		case <-p.done:
			return p.err()
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// close sends DISCONNECT and closes the connection.
func (p *publisher) close() {
	p.w.Write([]byte{0xE0, 0})
	p.w.Flush()
	p.conn.Close()
	<-p.done
}

func (p *publisher) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.readErr == nil {
		p.readErr = err
	}
}

func (p *publisher) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.readErr == nil || errors.Is(p.readErr, net.ErrClosed) {
		return errors.New("connection closed by the broker")
	}
	return fmt.Errorf("connection lost: %w", p.readErr)
}

func appendString(b []byte, s string) []byte {
	return append(append(b, byte(len(s)>>8), byte(len(s))), s...)
}

// appendLength appends MQTT's variable-length remaining length.
func appendLength(b []byte, n int) []byte {
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

func readLength(r *bufio.Reader) (int, error) {
	n, shift := 0, 0
	for i := 0; i < 4; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		n |= int(c&0x7f) << shift
		if c&0x80 == 0 {
			return n, nil
		}
		shift += 7
	}
	return 0, errors.New("malformed remaining length")
}
