package broker_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-iot/sluice/broker"
)

// The memory benchmarks run the broker in a child process (this test binary, re-executed) so
// that its resident memory is the broker's alone; this process plays the clients. The child
// takes overrides of the default configuration as YAML in SLUICE_MEASURE_BROKER, e.g.
//
//	SLUICE_MEASURE_CONFIG='max_pending_writes: 256' go test -run '^$' -bench Memory -benchtime 1x ./broker/
//
// It needs about 2 file descriptors per connection in all (Go raises the soft limit to the
// hard one; check `ulimit -Hn`).

// memChild is the broker process.
type memChild struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	addr string
}

// memStats is what the child reports after returning freed memory to the OS.
type memStats struct {
	RSS, HWM, HeapInuse, StackInuse, Sys uint64
	Clients                              int64
	Dropped                              float64 // messages to subscribers dropped, every reason
}

func startMemChild(b *testing.B, env ...string) *memChild {
	cmd := exec.Command(os.Args[0], "-test.run=^TestMemoryChild$", "-test.v=false")
	cmd.Env = append(append(os.Environ(), "SLUICE_MEASURE_BROKER=1"), env...)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	outPipe, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &memChild{cmd: cmd, in: in, out: bufio.NewScanner(outPipe)}
	if !c.out.Scan() {
		b.Fatal("child broker did not start")
	}
	c.addr = strings.TrimPrefix(c.out.Text(), "addr ")
	b.Cleanup(func() { in.Close(); cmd.Wait() })
	return c
}

func (c *memChild) stats(b *testing.B) memStats {
	fmt.Fprintln(c.in, "stats")
	if !c.out.Scan() {
		b.Fatal("child broker died")
	}
	var s memStats
	if _, err := fmt.Sscanf(c.out.Text(), "rss %d hwm %d heap %d stack %d sys %d clients %d dropped %g",
		&s.RSS, &s.HWM, &s.HeapInuse, &s.StackInuse, &s.Sys, &s.Clients, &s.Dropped); err != nil {
		b.Fatalf("child stats %q: %v", c.out.Text(), err)
	}
	return s
}

// TestMemoryChild is the broker process of the memory benchmarks; it does nothing unless
// started by them.
func TestMemoryChild(t *testing.T) {
	if os.Getenv("SLUICE_MEASURE_BROKER") != "1" {
		t.Skip("started by BenchmarkMemory only")
	}
	cfg := broker.DefaultConfig()
	cfg.Listeners[0].Address = "127.0.0.1:0"
	cfg.MaxClients = 100000
	for _, key := range []string{"SLUICE_MEASURE_CONFIG", "SLUICE_MEASURE_LISTENER"} {
		if y := os.Getenv(key); y != "" {
			if err := yaml.Unmarshal([]byte(y), &cfg); err != nil {
				t.Fatal(err)
			}
		}
	}
	b := start(t, cfg)
	fmt.Println("addr", b.Addrs()[0])
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		rss, hwm := procStatus("VmRSS:"), procStatus("VmHWM:")
		var dropped float64
		for _, reason := range []string{"pending_writes_full", "inflight_full", "expired", "session_ended", "refused_by_client"} {
			dropped += b.counter(t, "sluice_broker_outbound_dropped_total", "reason", reason)
		}
		fmt.Printf("rss %d hwm %d heap %d stack %d sys %d clients %d dropped %g\n", rss, hwm, ms.HeapInuse, ms.StackInuse, ms.Sys, b.Clients(), dropped)
	}
}

// procStatus returns a /proc/self/status value in bytes.
func procStatus(key string) uint64 {
	raw, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			var kb uint64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb << 10
		}
	}
	return 0
}

// openIdle opens n MQTT 3.1.1 connections that then stay silent (keep-alive 60 s).
func openIdle(b *testing.B, addr string, n, from int, tc *tls.Config) []net.Conn {
	conns := make([]net.Conn, 0, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	var firstErr error
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := rawConnectTLS(addr, fmt.Sprintf("idle-%d", from+i), "", "", 60, tc)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			conns = append(conns, c)
		}()
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("open %d connections: %v", n, firstErr)
	}
	return conns
}

// BenchmarkMemory reports the broker's resident memory with 1,000 and 10,000 idle
// connections, and its peak under load (1,000 connections publishing QoS 1 to a subscriber).
func BenchmarkMemory(b *testing.B) {
	ca := newCA(b, "measure CA")
	_, cert, key := ca.issue(b, "127.0.0.1", true)
	tlsListener := fmt.Sprintf("listeners: [{id: tls, type: tls, address: 127.0.0.1:0, tls: {cert_file: %s, key_file: %s}}]", cert, key)
	for _, tc := range []struct {
		name     string
		n        int
		listener string
		tls      *tls.Config
	}{
		{"idle-1000", 1000, "", nil},
		{"idle-10000", 10000, "", nil},
		{"idle-tls-1000", 1000, tlsListener, &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			n := tc.n
			child := startMemChild(b, "SLUICE_MEASURE_LISTENER="+tc.listener)
			base := child.stats(b)
			conns := openIdle(b, child.addr, n, 0, tc.tls)
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			time.Sleep(500 * time.Millisecond) // let every connection settle in its read loop
			s := child.stats(b)
			if s.Clients != int64(n) {
				b.Fatalf("clients: got %d, want %d", s.Clients, n)
			}
			per := float64(s.RSS-base.RSS) / float64(n)
			b.ReportMetric(float64(s.RSS)/(1<<20), "RSS-MiB")
			b.ReportMetric(per, "RSS-B/conn")
			b.ReportMetric(float64(s.HeapInuse-base.HeapInuse)/float64(n), "heap-B/conn")
			b.ReportMetric(float64(s.StackInuse-base.StackInuse)/float64(n), "stack-B/conn")
			b.Logf("%s: %d idle: RSS %d KiB (baseline %d KiB), %.0f B/connection; heap %d KiB, stacks %d KiB",
				tc.name, n, s.RSS>>10, base.RSS>>10, per, s.HeapInuse>>10, s.StackInuse>>10)
		})
	}
	b.Run("load-1000", func(b *testing.B) {
		child := startMemChild(b)
		const publishers, perPublisher = 1000, 50
		var seen collector
		sub, err := connect3(b, "tcp://"+child.addr, "sub", "", "", nil)
		if err != nil {
			b.Fatal(err)
		}
		sub.Subscribe("load/#", 1, seen.handler).Wait()
		payload := strings.Repeat("p", 200)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 200)
		start := time.Now()
		for p := range publishers {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				cl, err := connect3(b, "tcp://"+child.addr, fmt.Sprintf("pub-%d", p), "", "", nil)
				if err != nil {
					b.Error(err)
					return
				}
				for i := range perPublisher {
					cl.Publish(fmt.Sprintf("load/%d/%d", p, i), 1, false, payload).Wait()
				}
			}()
		}
		wg.Wait()
		s := child.stats(b)
		b.ReportMetric(float64(s.HWM)/(1<<20), "peak-RSS-MiB")
		b.ReportMetric(float64(publishers*perPublisher)/time.Since(start).Seconds(), "msg/s")
		time.Sleep(time.Second) // the subscriber's last messages
		s = child.stats(b)
		b.Logf("load: %d publishers × %d QoS 1 messages of 200 B to one subscriber: peak RSS %d KiB, RSS after %d KiB, %d delivered, %v dropped (counted)",
			publishers, perPublisher, s.HWM>>10, s.RSS>>10, len(seen.list()), s.Dropped)
	})
}
