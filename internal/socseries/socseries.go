// Package socseries is the scripted series of the store-on-change tests (hooks, edge,
// cmd/sluice): one temperature reading a minute from Start; below reading 500 the value steps
// up by 1.0 every ten readings, then it stays at 50; each reading carries ±0.2 of noise. With
// an absolute deadband of 0.5 and a heartbeat of 15 minutes, the kept readings are every
// tenth up to 500 (51 changes) and one every 15 minutes after 500 (33 heartbeats): 84 of the
// first 1,000, the other 916 inside the deadband.
package socseries

import (
	"slices"
	"time"
)

// Start is the time of reading 0.
var Start = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// At is the time of reading i.
func At(i int) time.Time { return Start.Add(time.Duration(i) * time.Minute) }

// Value is the value of reading i.
func Value(i int) float64 {
	base := 50.0
	if i < 500 {
		base = float64(i / 10)
	}
	if i%2 == 0 {
		return base + 0.2
	}
	return base - 0.2
}

// Kept returns the indexes below n that a deadband of 0.5 with a 15-minute heartbeat keeps,
// by construction: the first reading of every step (i%10 == 0 up to 500) and a heartbeat
// every 15 readings after 500.
func Kept(n int) (changed, heartbeat []int) {
	for i := 0; i <= 500 && i < n; i += 10 {
		changed = append(changed, i)
	}
	for i := 515; i < n; i += 15 {
		heartbeat = append(heartbeat, i)
	}
	return changed, heartbeat
}

// KeptAt returns the times of the readings below n that are kept (see Kept), in order.
func KeptAt(n int) []time.Time {
	changed, heartbeat := Kept(n)
	var at []time.Time
	for _, i := range slices.Concat(changed, heartbeat) {
		at = append(at, At(i))
	}
	return at
}
