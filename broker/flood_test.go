package broker_test

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/sluice-iot/sluice/broker"
	"github.com/sluice-iot/sluice/internal/mqtttest"
)

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
	mqtttest.WaitFor(t, 10*time.Second, "no clients", func() bool { return b.Clients() == 0 })
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
	mqtttest.WaitFor(t, 10*time.Second, "every flood client to be gone", func() bool { return b.Clients() == 0 })
	var heap1 uint64
	var gr1 int
	mqtttest.WaitFor(t, 10*time.Second, "goroutines to return to the baseline", func() bool {
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
	mqtttest.WaitFor(t, 10*time.Second, "a real client to connect", func() bool {
		c, err := rawConnect(addr, "real", "", "", 30)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}
