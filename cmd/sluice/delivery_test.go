package main

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/pgtest"
)

// A QoS 1 stream runs while `sluice run` is killed with SIGKILL five times at random moments
// and restarted each time on the same data dir: every acknowledged reading ends in the database
// exactly once.
func TestRepeatedCrashLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("five crashes")
	}
	bin := sluiceBin(t)
	dir := t.TempDir()
	schema := pgtest.Schema(t)
	addr := mqtttest.FreeAddr(t)
	config := writeConfig(t, dir, addr, schema, "")

	var mu sync.Mutex
	acked := map[int]bool{}
	next := 1
	// publish sends until the connection dies, remembering what was acknowledged.
	publish := func() {
		cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("crashes").SetAutoReconnect(false))
		if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return
		}
		defer cl.Disconnect(0)
		for {
			mu.Lock()
			i := next
			next++
			mu.Unlock()
			tok := cl.Publish("sensors/crashes/up", 1, false, fmt.Sprintf(`{"seq":%d,"time":%d}`, i, 1_700_000_000_000+int64(i)))
			if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil || !cl.IsConnectionOpen() {
				return
			}
			mu.Lock()
			acked[i] = true
			mu.Unlock()
		}
	}

	for kill := 1; kill <= 5; kill++ {
		c := startChild(t, bin, config)
		waitListening(t, addr)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); publish() }()
		time.Sleep(time.Duration(300+rand.IntN(2000)) * time.Millisecond)
		c.kill(t)
		wg.Wait()
		mu.Lock()
		t.Logf("kill %d: %d messages acknowledged so far", kill, len(acked))
		mu.Unlock()
	}
	if len(acked) < 500 {
		t.Fatalf("only %d messages acknowledged across five runs; the stream did not run", len(acked))
	}

	last := startChild(t, bin, config)
	waitListening(t, addr)
	want := int64(len(acked))
	max := next
	var n int64
	// Messages fetched but not committed by a killed process are redelivered after the
	// acknowledgement wait (30 s).
	for deadline := time.Now().Add(120 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if n = countOrZero(t, schema, "SELECT count(*) FROM readings WHERE metric = 'seq'"); n >= want {
			break
		}
	}
	var missing []int
	stored := map[int]bool{}
	pgtest.Query(t, schema, func(conn *pgx.Conn) error {
		rows, err := conn.Query(t.Context(), "SELECT value::int FROM readings WHERE metric = 'seq'")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				return err
			}
			stored[v] = true
		}
		return rows.Err()
	})
	for i := 1; i < max; i++ {
		if acked[i] && !stored[i] {
			missing = append(missing, i)
		}
	}
	t.Logf("%d messages acknowledged across 5 SIGKILLs, %d readings stored (unacknowledged ones may be stored too)", want, n)
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged readings missing, e.g. seq %v", len(missing), missing[:min(10, len(missing))])
	}
	if d := pgtest.Count(t, schema, "SELECT count(*) - count(DISTINCT value) FROM readings WHERE metric = 'seq'"); d != 0 {
		t.Fatalf("%d duplicate readings", d)
	}
	last.stop(t)
}
