package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/pgtest"
)

// SIGKILL in the middle of a QoS 1 stream, then a restart on the same data dir: every message
// that was acknowledged is in the database exactly once.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	bin := sluiceBin(t)
	dir := t.TempDir()
	schema := pgtest.Schema(t)
	addr := mqtttest.FreeAddr(t)
	config := writeConfig(t, dir, addr, schema, "")

	first := startChild(t, bin, config)
	waitListening(t, addr)

	cl := mqtttest.Connect(t, addr, "crash")
	var acked []int
	var count atomic.Int64 // len(acked), for the killer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // publish until the connection dies; remember what was acknowledged
		defer wg.Done()
		for i := 1; i <= 100_000; i++ {
			tok := cl.Publish("sensors/crash/up", 1, false, fmt.Sprintf(`{"seq":%d,"time":%d}`, i, 1_700_000_000_000+int64(i)))
			if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil || !cl.IsConnectionOpen() {
				return
			}
			acked = append(acked, i)
			count.Add(1)
		}
	}()
	// Kill once the stream runs (500 acknowledged), whatever the machine's speed.
	for deadline := time.Now().Add(60 * time.Second); count.Load() < 500; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d messages acknowledged in 60s; the stream did not run", count.Load())
		}
	}
	first.kill(t)
	wg.Wait()
	cl.Disconnect(0)
	if len(acked) < 100 {
		t.Fatalf("only %d messages acknowledged before the kill; the stream did not run", len(acked))
	}

	second := startChild(t, bin, config)
	waitListening(t, addr)
	want := int64(len(acked))
	var n int64
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if n = countOrZero(t, schema, "SELECT count(*) FROM readings WHERE metric = 'seq' AND value <= $1", want); n >= want {
			break
		}
	}
	t.Logf("%d messages acknowledged before SIGKILL; %d of them stored after restart", want, n)
	if n != want {
		t.Fatalf("acknowledged readings in the database: got %d, want %d", n, want)
	}
	if d := pgtest.Count(t, schema, "SELECT count(*) - count(DISTINCT value) FROM readings WHERE metric = 'seq'"); d != 0 {
		t.Fatalf("%d duplicate readings", d)
	}
	second.stop(t)
}
