package edge_test

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/internal/sitetest"
	"github.com/sluice-iot/sluice/internal/tcpproxy"
	"github.com/sluice-iot/sluice/sink"
)

// stream publishes QoS 1 messages of 5 readings each, one every interval, until stop; it
// fails the test on any message not acknowledged.
type stream struct {
	acked atomic.Int64
	stop  chan struct{}
	done  sync.WaitGroup
}

func startStream(t *testing.T, addr, device string, interval time.Duration) *stream {
	s := &stream{stop: make(chan struct{})}
	cl := mqtttest.Connect(t, addr, "stream-"+device)
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		defer cl.Disconnect(100)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := int64(1); ; i++ {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			tok := cl.Publish("sensors/"+device+"/up", 1, false,
				fmt.Sprintf(`{"seq":%d,"a":%d,"b":1,"c":2,"d":3,"time":%d}`, i, i%7, 1_700_000_000_000+i))
			if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				t.Errorf("message %d not acknowledged: %v", i, tok.Error())
				return
			}
			s.acked.Store(i)
		}
	}()
	return s
}

func (s *stream) finish() int64 {
	close(s.stop)
	s.done.Wait()
	return s.acked.Load()
}

// A steady QoS 1 stream runs while the database is cut for 30 s: every acknowledged reading
// arrives exactly once, and the backlog drains at the rate this test reports.
func TestOutageThirtySecondsDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("a 30 s outage")
	}
	cfg, proxy := proxiedConfig(t)
	site := sitetest.Start(t, cfg)
	began := time.Now()
	s := startStream(t, site.MQTTAddr, "steady", 2*time.Millisecond)
	time.Sleep(2 * time.Second)
	proxy.Cut()
	time.Sleep(30 * time.Second)
	during := getJSON[edge.Status](t, site.HTTPAddr, "/status").Targets[0]
	conn := pgtest.Connect(t, site.Schema)
	count := func() (n int64) {
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM readings").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	stored := count()
	backlog := 5*s.acked.Load() - stored // every acknowledged reading not yet in the database
	proxy.Restore()
	restored := time.Now()
	for count() < stored+backlog {
		if time.Since(restored) > 120*time.Second {
			t.Fatalf("backlog of %d readings not drained 120 s after the outage", backlog)
		}
		time.Sleep(10 * time.Millisecond)
	}
	drained := time.Since(restored)
	sent := s.finish()
	t.Logf("outage 30 s: backlog %d readings (%d messages lagging); drained in %v: %.0f rows/s, while ingest went on at %.0f rows/s",
		backlog, during.LagMessages, drained.Round(time.Millisecond), float64(backlog)/drained.Seconds(), 5*float64(sent)/time.Since(began).Seconds())
	if during.State != "degraded" || during.LagMessages == 0 {
		t.Fatalf("status during the outage: got %+v, want degraded with a backlog", during)
	}
	want := 5 * sent
	if n := waitCountIn(t, site.Schema, want); n != want {
		t.Fatalf("readings: got %d, want %d (5 × %d acknowledged messages)", n, want, sent)
	}
	if n := pgtest.Count(t, site.Schema, "SELECT count(DISTINCT value) FROM readings WHERE metric = 'seq'"); n != sent {
		t.Fatalf("distinct seq: got %d, want %d", n, sent)
	}
}

// Two targets (two schemas, each its own pool) receive the same stream; one is cut for a while
// and the other keeps writing meanwhile; once it is back, both hold the same readings.
func TestDualWriteOneTargetCut(t *testing.T) {
	cfg := sitetest.Config(t)
	u, err := url.Parse(pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := tcpproxy.Start(t, u.Host)
	u.Host = proxy.Addr
	mirror := sink.DefaultTargetConfig()
	mirror.Name, mirror.DatabaseURL, mirror.Schema = "mirror", u.String(), pgtest.Schema(t)
	mirror.BatchWait, mirror.RetryMax = 20*time.Millisecond, 200*time.Millisecond
	cfg.Sink.Targets = append(cfg.Sink.Targets, mirror)
	site := sitetest.Start(t, cfg)
	main := site.Schema

	s := startStream(t, site.MQTTAddr, "dual", 2*time.Millisecond)
	time.Sleep(time.Second)
	proxy.Cut()
	// While the mirror is cut, the main target keeps up with the stream.
	var st edge.Status
	mqtttest.WaitFor(t, 60*time.Second, "the mirror to be degraded and lagging", func() bool {
		st = getJSON[edge.Status](t, site.HTTPAddr, "/status")
		return st.Targets[1].State == "degraded" && st.Targets[1].LagMessages > 0
	})
	mid := s.acked.Load()
	if n := waitCountIn(t, site.Schema, 5*mid); n < 5*mid {
		t.Fatalf("main target stalled while the mirror was cut: %d readings, want at least %d", n, 5*mid)
	}
	if st.Targets[1].Name != "mirror" || st.Targets[1].State != "degraded" || st.Targets[1].LagMessages == 0 {
		t.Fatalf("status while the mirror is cut: got %+v, want it degraded and lagging", st.Targets[1])
	}
	proxy.Restore()
	time.Sleep(time.Second)
	sent := s.finish()
	for _, schema := range []string{main, mirror.Schema} {
		n := waitCountIn(t, schema, 5*sent)
		if n != 5*sent {
			t.Fatalf("schema %s: got %d readings, want %d", schema, n, 5*sent)
		}
	}
	q := fmt.Sprintf(`SELECT count(*) FROM (
		(SELECT time, device, metric, value FROM %[1]s.readings EXCEPT ALL SELECT time, device, metric, value FROM %[2]s.readings)
		UNION ALL
		(SELECT time, device, metric, value FROM %[2]s.readings EXCEPT ALL SELECT time, device, metric, value FROM %[1]s.readings)) d`, main, mirror.Schema)
	if n := pgtest.Count(t, "", q); n != 0 {
		t.Fatalf("the targets differ by %d readings", n)
	}
}

func waitCountIn(t *testing.T, schema string, want int64) int64 {
	t.Helper()
	conn := pgtest.Connect(t, schema)
	var n int64
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM readings").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n >= want {
			break
		}
	}
	return n
}
