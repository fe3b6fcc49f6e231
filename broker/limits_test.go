package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/sluice-iot/sluice/broker"
)

func TestWebSocket(t *testing.T) {
	ca := newCA(t, "sluice test CA")
	_, certFile, keyFile := ca.issue(t, "127.0.0.1", true)
	dev1, _, _ := ca.issue(t, "dev-1", false)
	cfg := authConfig(t)
	cfg.Listeners = []broker.ListenerConfig{
		{ID: "tcp", Type: "tcp", Address: "127.0.0.1:0"},
		{ID: "ws", Type: "ws", Address: "127.0.0.1:0"},
		{ID: "wss", Type: "wss", Address: "127.0.0.1:0", TLS: broker.TLSConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: ca.file, ClientCerts: "optional"}},
	}
	b := start(t, cfg)
	addrs := b.Addrs()
	var seen collector
	mon, err := connect3(t, "ws://"+addrs[1], "monitor", "monitor", "secret-monitor", nil)
	if err != nil {
		t.Fatalf("connect over ws: %v", err)
	}
	if tok := mon.Subscribe("sensors/#", 1, seen.handler); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	ws, err := connect3(t, "ws://"+addrs[1], "dev-2", "dev-2", "secret-dev-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok := ws.Publish("sensors/dev-2/up", 1, false, "over ws"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish over ws: %v", tok.Error())
	}
	wss, err := connect3(t, "wss://"+addrs[2], "dev-1", "", "", &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{dev1}})
	if err != nil {
		t.Fatalf("connect over wss with a client certificate: %v", err)
	}
	if tok := wss.Publish("sensors/dev-1/up", 1, false, "over wss"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish over wss: %v", tok.Error())
	}
	big := strings.Repeat("x", 100<<10) // spans many WebSocket reads
	if tok := ws.Publish("sensors/dev-2/up", 1, false, big); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish 100KiB over ws: %v", tok.Error())
	}
	waitFor(t, "three messages over WebSocket", func() bool { return len(seen.list()) >= 3 })
	// Messages from different clients may arrive in any order.
	got := seen.list()
	sort.Strings(got)
	want := []string{"sensors/dev-1/up over wss", "sensors/dev-2/up over ws", "sensors/dev-2/up " + big}
	sort.Strings(want)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("received %.80q", got)
	}
}

// A packet above max_packet_size disconnects its sender (counted as packet_too_large); the
// broker keeps serving everyone else.
func TestOversizedPacket(t *testing.T) {
	cfg := authConfig(t)
	cfg.MaxPacketSize = 1 << 10
	b := start(t, cfg)
	addr := b.Addrs()[0]
	var seen collector
	mon, err := connect3(t, "tcp://"+addr, "monitor", "monitor", "secret-monitor", nil)
	if err != nil {
		t.Fatal(err)
	}
	mon.Subscribe("sensors/#", 1, seen.handler).WaitTimeout(5 * time.Second)

	lost := make(chan error, 1)
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("big").SetUsername("dev-1").SetPassword("secret-dev-1").
		SetAutoReconnect(false).SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	big := paho.NewClient(opts)
	if tok := big.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	big.Publish("sensors/dev-1/up", 1, false, strings.Repeat("x", 2<<10))
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the client sending a 2KiB packet to a 1KiB broker was not disconnected")
	}
	waitFor(t, "the disconnection to be counted", func() bool {
		return b.counter(t, "sluice_broker_disconnects_total", "reason", "packet_too_large") == 1
	})

	// MQTT 5 clients are told the limit in CONNACK.
	c5, err := connect5(t, addr, "v5", "dev-2", "secret-dev-2")
	if err != nil {
		t.Fatal(err)
	}
	if p := c5.connack.Properties; p == nil || p.MaximumPacketSize == nil || *p.MaximumPacketSize != 1<<10 {
		t.Errorf("CONNACK maximum packet size: got %+v, want 1024", p)
	}
	if p := c5.connack.Properties; p.ServerKeepAlive != nil {
		t.Errorf("CONNACK server keep alive: got %d, want none for a keep-alive of 30s", *p.ServerKeepAlive)
	}

	// The broker still serves.
	ok, err := connect3(t, "tcp://"+addr, "small", "dev-1", "secret-dev-1", nil)
	if err != nil {
		t.Fatalf("connect after the oversized packet: %v", err)
	}
	if tok := ok.Publish("sensors/dev-1/up", 1, false, "still here"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	waitFor(t, "the next message", func() bool { return len(seen.list()) == 1 })
	if got := seen.list()[0]; got != "sensors/dev-1/up still here" {
		t.Errorf("got %q", got)
	}
}

// rawConnect opens a TCP connection and completes an MQTT 3.1.1 CONNECT by hand, so that
// thousands of clients cost the test little.
func rawConnect(addr, id, user, password string, keepAlive uint16) (net.Conn, error) {
	return rawConnectTLS(addr, id, user, password, keepAlive, nil)
}

// rawConnectTLS is rawConnect over TLS when tc is not nil.
func rawConnectTLS(addr, id, user, password string, keepAlive uint16, tc *tls.Config) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		conn = tls.Client(conn, tc)
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: keepAlive, ClientIdentifier: id,
			UsernameFlag: user != "", Username: []byte(user), PasswordFlag: password != "", Password: []byte(password),
		},
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(buf.Bytes()); err != nil {
		conn.Close()
		return nil, err
	}
	ack := make([]byte, 4)
	if _, err := ioReadFull(conn, ack); err != nil {
		conn.Close()
		return nil, fmt.Errorf("read connack: %w", err)
	}
	if ack[0] != packets.Connack<<4 || ack[3] != 0 {
		conn.Close()
		return nil, fmt.Errorf("connack % x", ack)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

func ioReadFull(c net.Conn, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := c.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// heapAfterGC returns the live heap and the goroutine count once the garbage collector ran.
func heapAfterGC() (uint64, int) {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, runtime.NumGoroutine()
}

// Thousands of connections opened and closed in a loop leave nothing behind: the live heap
// and the goroutines return to their baseline.
func TestConnectionFlood(t *testing.T) {
	cfg := authConfig(t)
	b := start(t, cfg)
	addr := b.Addrs()[0]
	// One login first, so that the bcrypt check is remembered and one-time allocations are
	// part of the baseline.
	if c, err := rawConnect(addr, "warm", "dev-1", "secret-dev-1", 30); err != nil {
		t.Fatal(err)
	} else {
		c.Close()
	}
	waitFor(t, "no clients", func() bool { return b.Clients() == 0 })
	heap0, gr0 := heapAfterGC()

	const rounds, perRound = 10, 300
	for r := range rounds {
		conns := make([]net.Conn, 0, perRound)
		for i := range perRound {
			c, err := rawConnect(addr, fmt.Sprintf("flood-%d-%d", r, i), "dev-1", "secret-dev-1", 30)
			if err != nil {
				t.Fatalf("round %d connection %d: %v", r, i, err)
			}
			conns = append(conns, c)
		}
		if r == 0 {
			if got := b.Clients(); got != perRound {
				t.Fatalf("clients: got %d, want %d", got, perRound)
			}
		}
		for _, c := range conns {
			c.Close()
		}
	}
	waitFor(t, "every flood client to be gone", func() bool { return b.Clients() == 0 })
	var heap1 uint64
	var gr1 int
	waitFor(t, "goroutines to return to the baseline", func() bool {
		heap1, gr1 = heapAfterGC()
		return gr1 <= gr0+5
	})
	t.Logf("%d connections: live heap %d KiB before, %d KiB after; goroutines %d before, %d after",
		rounds*perRound, heap0>>10, heap1>>10, gr0, gr1)
	// One connection holds ~10 KiB of heap: 300 leaked would add 3 MiB.
	if heap1 > heap0+2<<20 {
		t.Errorf("live heap grew from %d KiB to %d KiB after %d connections", heap0>>10, heap1>>10, rounds*perRound)
	}
	if got := b.counter(t, "sluice_broker_logins_total", "method", "password"); got != rounds*perRound+1 {
		t.Errorf("logins: got %v, want %d", got, rounds*perRound+1)
	}
}

// A subscriber that stops reading loses messages once its pending-write queue is full, and
// every such drop is counted.
func TestSlowSubscriberDropsAreCounted(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listeners[0].Address = "127.0.0.1:0"
	cfg.MaxPendingWrites = 8
	b := start(t, cfg)
	addr := b.Addrs()[0]

	slow, err := rawConnect(addr, "slow", "", "", 60)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	sub := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 4, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "sensors/#", Qos: 0}},
	}
	var buf bytes.Buffer
	if err := sub.SubscribeEncode(&buf); err != nil {
		t.Fatal(err)
	}
	slow.Write(buf.Bytes())
	suback := make([]byte, 5)
	if _, err := ioReadFull(slow, suback); err != nil {
		t.Fatal(err)
	}
	// From here on the subscriber reads nothing.

	pub, err := connect3(t, "tcp://"+addr, "fast", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	payload := strings.Repeat("r", 16<<10)
	const n = 2000 // 32 MiB: more than the kernel's socket buffers hold
	for range n {
		pub.Publish("sensors/dev-1/up", 0, false, payload)
	}
	if tok := pub.Publish("sensors/dev-1/up", 1, false, "last"); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	dropped := b.counter(t, "sluice_broker_outbound_dropped_total", "reason", "pending_writes_full")
	if dropped == 0 {
		t.Fatalf("sluice_broker_outbound_dropped_total{reason=pending_writes_full}: got 0 after %d messages to a subscriber that reads nothing", n)
	}

	// Now the subscriber reads. Markers are published until one arrives: messages arrive in
	// order, so by then every earlier message was either delivered or dropped, and the two
	// must add up to everything published.
	seenMarker := make(chan int, 1000)
	delivered := 0
	go func() {
		r := bufio.NewReader(slow)
		for {
			typ, body, err := readPacket(r)
			if err != nil {
				close(seenMarker)
				return
			}
			if typ != packets.Publish {
				continue
			}
			delivered++
			topicLen := int(body[0])<<8 | int(body[1])
			if m, ok := strings.CutPrefix(string(body[2+topicLen:]), "marker-"); ok {
				var i int
				fmt.Sscan(m, &i)
				seenMarker <- i
			}
		}
	}()
	markers := 0
	last := -1
	for last != markers {
		markers++
		pub.Publish("sensors/dev-1/up", 0, false, fmt.Sprintf("marker-%d", markers))
		select {
		case i, ok := <-seenMarker:
			if !ok {
				t.Fatal("the subscriber's connection closed")
			}
			last = i
		case <-time.After(100 * time.Millisecond): // another marker, in case this one was dropped
		}
		for len(seenMarker) > 0 {
			last = <-seenMarker
		}
		if markers > 1000 {
			t.Fatal("no marker arrived")
		}
	}
	slow.Close() // ends the reader; delivered is final once it closed seenMarker
	for range seenMarker {
	}
	dropped = b.counter(t, "sluice_broker_outbound_dropped_total", "reason", "pending_writes_full")
	published := n + 1 + markers
	t.Logf("%d published, %d delivered, %v dropped and counted", published, delivered, dropped)
	if float64(delivered)+dropped != float64(published) {
		t.Errorf("delivered %d + dropped %v = %v, want every one of the %d published", delivered, dropped, float64(delivered)+dropped, published)
	}
}

// readPacket reads one MQTT packet: its type and the bytes after the fixed header.
func readPacket(r *bufio.Reader) (byte, []byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	length, mult := 0, 1
	for {
		b, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		length += int(b&0x7f) * mult
		if b&0x80 == 0 {
			break
		}
		mult *= 128
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return first >> 4, body, nil
}

// A keep-alive of 0 (never time out) is replaced by max_keep_alive, and MQTT 5 clients are
// told so in CONNACK.
func TestKeepAliveCap(t *testing.T) {
	cfg := authConfig(t)
	cfg.MaxKeepAlive = 2 * time.Minute
	b := start(t, cfg)
	conn, err := net.Dial("tcp", b.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cl := paho5.NewClient(paho5.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := cl.Connect(ctx, &paho5.Connect{ClientID: "ka", KeepAlive: 0, CleanStart: true,
		Username: "dev-1", UsernameFlag: true, Password: []byte("secret-dev-1"), PasswordFlag: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Disconnect(&paho5.Disconnect{})
	if p := ca.Properties; p == nil || p.ServerKeepAlive == nil || *p.ServerKeepAlive != 120 {
		t.Errorf("CONNACK server keep alive: got %+v, want 120", p)
	}
	if p := ca.Properties; p.TopicAliasMaximum == nil || *p.TopicAliasMaximum != 16 {
		t.Errorf("CONNACK topic alias maximum: got %+v, want 16", p)
	}
}

// A connection that never sends CONNECT is closed after connect_timeout.
func TestConnectTimeout(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listeners = []broker.ListenerConfig{{ID: "tcp", Type: "tcp", Address: "127.0.0.1:0"}, {ID: "ws", Type: "ws", Address: "127.0.0.1:0"}}
	cfg.ConnectTimeout = 100 * time.Millisecond
	b := start(t, cfg)
	for i, addr := range b.Addrs() {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("listener %d: a silent connection was still open after 10s (connect_timeout 100ms)", i)
		}
		conn.Close()
	}
}

// Connections that have not sent CONNECT count against the limit too: beyond max_clients +
// 10 % + 16 open connections, new ones are closed at once and counted.
func TestConnectionLimitBeforeConnect(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listeners[0].Address = "127.0.0.1:0"
	cfg.MaxClients = 10
	cfg.ConnectTimeout = time.Minute
	b := start(t, cfg)
	addr := b.Addrs()[0]
	const slots = 10 + 1 + 16
	var silent []net.Conn
	defer func() {
		for _, c := range silent {
			c.Close()
		}
	}()
	for range slots {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)
	}
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("connection %d: got %v, want it closed at once", slots+1, err)
	}
	if got := b.counter(t, "sluice_broker_connections_refused_total", "", ""); got != 1 {
		t.Errorf("sluice_broker_connections_refused_total: got %v, want 1", got)
	}
	// Freed slots serve real clients again.
	for _, c := range silent[:5] {
		c.Close()
	}
	silent = silent[5:]
	waitFor(t, "a real client to connect", func() bool {
		c, err := rawConnect(addr, "real", "", "", 30)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
