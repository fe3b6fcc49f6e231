package bench

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Telegraf's debug lines "Wrote batch of N metrics" add up to the rows written, and its
// "Connected" line says it is subscribed.
func TestPeerLog(t *testing.T) {
	log := "2026-12-06T05:00:00Z I! [inputs.mqtt_consumer] Connected [tcp://127.0.0.1:1885]\n" +
		"2026-12-06T05:00:01Z D! [outputs.postgresql] Wrote batch of 5000 metrics in 52.1ms\n" +
		"2026-12-06T05:00:01Z D! [outputs.postgresql] Buffer fullness: 10 / 1000000 metrics\n" +
		"2026-12-06T05:00:02Z D! [outputs.postgresql] Wrote batch of 12 metrics in 3ms\n"
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { w.WriteString(log); w.Close() }()
	logf, err := os.Create(filepath.Join(t.TempDir(), "telegraf.log"))
	if err != nil {
		t.Fatal(err)
	}
	s := &peerStack{connected: make(chan struct{})}
	var got []int64
	s.readLog(r, logf, func(x sample) { got = append(got, x.rows) })
	if want := []int64{5000, 5012}; !slices.Equal(got, want) {
		t.Errorf("rows written: got %v, want %v", got, want)
	}
	select {
	case <-s.connected:
	default:
		t.Error("the Connected line was not noticed")
	}
}
