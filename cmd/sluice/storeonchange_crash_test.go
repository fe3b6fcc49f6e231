package main

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/internal/socseries"
)

func socPublish(t *testing.T, addr string, from, to int) {
	t.Helper()
	cl := mqtttest.Connect(t, addr, fmt.Sprint("soc-", from))
	defer cl.Disconnect(100)
	for i := from; i < to; i++ {
		payload := fmt.Sprintf(`{"temperature":%g,"time":%q}`, socseries.Value(i), socseries.At(i).Format(time.RFC3339))
		if tok := cl.Publish("sensors/dev-1/up", 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("reading %d: not acknowledged: %v", i, tok.Error())
		}
	}
}

func socRows(t *testing.T, schema string, want int) []time.Time {
	t.Helper()
	var got []time.Time
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if n := countOrZero(t, schema, "SELECT count(*) FROM readings WHERE metric = 'temperature'"); n >= int64(want) || time.Now().After(deadline) {
			break
		}
	}
	rows, err := pgtest.Connect(t, schema).Query(t.Context(), "SELECT time FROM readings WHERE metric = 'temperature' ORDER BY time")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var at time.Time
		if err := rows.Scan(&at); err != nil {
			t.Fatal(err)
		}
		got = append(got, at.UTC())
	}
	return got
}

// SIGKILL in the middle of the scripted series (the only snapshot is the one taken at
// start-up), then a restart on the same data dir: the uplinks stored since that snapshot are
// replayed from JetStream, and the database gets exactly the rows it gets without a crash —
// no reading kept twice, no heartbeat missed.
func TestStoreOnChangeSurvivesSIGKILL(t *testing.T) {
	bin := sluiceBin(t)
	dir := t.TempDir()
	schema := pgtest.Schema(t)
	addr := mqtttest.FreeAddr(t)
	config := writeConfig(t, dir, addr, schema, `store_on_change:
  snapshot_interval: 1h
  metrics: {temperature: {absolute: 0.5, heartbeat: 15m}}
`)

	first := startChild(t, bin, config)
	waitListening(t, addr)
	socPublish(t, addr, 0, 600)
	if got, want := socRows(t, schema, len(socseries.KeptAt(600))), socseries.KeptAt(600); len(got) != len(want) {
		t.Fatalf("before the kill: %d rows, want %d", len(got), len(want))
	}
	first.kill(t)

	second := startChild(t, bin, config)
	waitListening(t, addr)
	socPublish(t, addr, 600, 1000)
	got, want := socRows(t, schema, len(socseries.KeptAt(1000))), socseries.KeptAt(1000)
	if !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Fatalf("after SIGKILL and restart the rows differ (%d, want %d):\n got %v\nwant %v", len(got), len(want), got, want)
	}
	second.stop(t)
}
