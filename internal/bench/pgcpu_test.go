package bench

import (
	"testing"
	"time"
)

// PostgreSQL's CPU is what its processes used between the snapshots, all of it for a process
// that started in between, and none of the benchmark's own backends.
func TestCPUBetween(t *testing.T) {
	start := pgSnapshot{1: 10 * time.Second, 2: 3 * time.Second, 3: time.Second, 9: time.Second}
	end := pgSnapshot{1: 12 * time.Second, 2: 3 * time.Second, 3: 4 * time.Second, 4: 500 * time.Millisecond}
	got := cpuBetween(start, end, map[int]bool{3: true})
	if want := (pgCPU{server: 2500 * time.Millisecond, own: 3 * time.Second, processes: 3}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
