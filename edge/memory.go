package edge

import (
	"runtime/debug"

	"github.com/sluice-iot/sluice"
)

// DefaultMemoryLimit is the Go runtime's soft memory limit when neither memory_limit nor
// GOMEMLIMIT says otherwise. It bounds what accumulates between collections: the garbage
// (with GOGC=100 the heap grows to twice the live heap first), and the embedded JetStream
// file store's pooled block buffers and the caches it holds only weakly. It cannot free what
// is live — the store's write cache of the last 10 s, the de-duplication window — and it is a
// soft limit: a live heap near it costs CPU (the collector runs more often, at most about half
// of the CPU), never a failure. docs/operations.md ("Memory by board") gives the figures.
const DefaultMemoryLimit = 192 << 20

// minMemoryLimit is the smallest memory_limit accepted: below it the collector would run
// continuously with an idle site's heap.
const minMemoryLimit = 32 << 20

// memoryLimit is what applyMemoryLimit did: the limit in force and where it came from.
type memoryLimit struct {
	bytes  int64
	source string // "GOMEMLIMIT", "memory_limit" or "none"
}

// applyMemoryLimit sets the runtime's soft memory limit from the configuration, unless the
// GOMEMLIMIT environment variable is set: an operator's environment wins over the file, as
// the Go runtime has already applied it. A limit of 0 leaves the runtime without one. It
// returns the limit in force, read back from the runtime.
func applyMemoryLimit(limit sluice.ByteSize, getenv func(string) string) memoryLimit {
	switch {
	case getenv("GOMEMLIMIT") != "":
		return memoryLimit{debug.SetMemoryLimit(-1), "GOMEMLIMIT"}
	case limit > 0:
		debug.SetMemoryLimit(int64(limit))
		return memoryLimit{debug.SetMemoryLimit(-1), "memory_limit"}
	default:
		return memoryLimit{debug.SetMemoryLimit(-1), "none"}
	}
}
