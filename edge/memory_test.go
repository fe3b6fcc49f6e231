package edge

import (
	"os"
	"runtime/debug"
	"testing"

	"github.com/sluice-iot/sluice"
)

// restoreMemoryLimit puts back the test binary's limit after a test changes it.
func restoreMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
}

// memory_limit is applied to the runtime, and GOMEMLIMIT in the environment wins over it: the
// runtime has already applied it at start, and Sluice leaves it so.
func TestApplyMemoryLimit(t *testing.T) {
	const fromEnv = 300 << 20 // what the runtime set from GOMEMLIMIT=300MiB at start
	tests := []struct {
		name       string
		limit      int64
		gomemlimit string
		want       int64
		wantSource string
	}{
		{"memory_limit", 96 << 20, "", 96 << 20, "memory_limit"},
		{"GOMEMLIMIT wins", 96 << 20, "300MiB", fromEnv, "GOMEMLIMIT"},
		{"GOMEMLIMIT with no memory_limit", 0, "300MiB", fromEnv, "GOMEMLIMIT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			restoreMemoryLimit(t)
			debug.SetMemoryLimit(fromEnv)
			t.Setenv("GOMEMLIMIT", tt.gomemlimit)
			got := applyMemoryLimit(sluice.ByteSize(tt.limit), os.Getenv)
			if read := debug.SetMemoryLimit(-1); read != tt.want {
				t.Errorf("runtime memory limit: got %d, want %d", read, tt.want)
			}
			if got.bytes != tt.want || got.source != tt.wantSource {
				t.Errorf("applyMemoryLimit: got %d from %s, want %d from %s", got.bytes, got.source, tt.want, tt.wantSource)
			}
		})
	}
}

// A site built from the default configuration runs with DefaultMemoryLimit.
func TestDefaultConfigSetsMemoryLimit(t *testing.T) {
	restoreMemoryLimit(t)
	t.Setenv("GOMEMLIMIT", "")
	cfg := DefaultConfig()
	if got := applyMemoryLimit(cfg.MemoryLimit, os.Getenv); got.bytes != DefaultMemoryLimit || got.source != "memory_limit" {
		t.Errorf("got %d from %s, want %d from memory_limit", got.bytes, got.source, DefaultMemoryLimit)
	}
	if read := debug.SetMemoryLimit(-1); read != DefaultMemoryLimit {
		t.Errorf("runtime memory limit: got %d, want %d", read, DefaultMemoryLimit)
	}
}
