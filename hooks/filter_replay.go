package hooks

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-iot/sluice"
)

// StoredUplinks reads back the uplinks the buffer stored (sink.Buffer implements it).
type StoredUplinks interface {
	// UplinksSince calls fn with every uplink stored at or after since, in stored order, and
	// returns how many it gave to fn.
	UplinksSince(ctx context.Context, since time.Time, fn func(*sluice.Uplink)) (int, error)
}

// ReplayMargin is how far before a snapshot's saved-at time Replay starts. Replaying an
// uplink the snapshot already holds is harmless (uplinks are replayed in stored order, so the
// newest value wins); the margin covers uplinks stored just before saved-at but committed to
// the filter just after their shard was copied.
const ReplayMargin = 10 * time.Second

// Replay commits the kept readings of every uplink stored since since-ReplayMargin, in stored
// order, so that the state reflects everything stored before a crash and not only its last
// snapshot. It must run before intake starts; it returns the uplinks replayed.
func (f *Filter) Replay(ctx context.Context, stored StoredUplinks, since time.Time) (int, error) {
	n, err := stored.UplinksSince(ctx, since.Add(-ReplayMargin), func(u *sluice.Uplink) {
		f.Commit(u)
		f.m.replayed.Inc()
	})
	if err != nil {
		return n, fmt.Errorf("replay for store-on-change: %w", err)
	}
	return n, nil
}
