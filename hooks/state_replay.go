package hooks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-iot/sluice"
)

// ReplayMargin is how far before a snapshot's saved-at time Replay starts. Replaying an
// uplink the snapshot already holds is harmless (uplinks are replayed in stored order, so the
// newest value wins); the margin covers uplinks stored just before saved-at but committed to
// the filter just after their shard was copied.
const ReplayMargin = 10 * time.Second

// Replay commits the kept readings of every uplink stored in stream since since-ReplayMargin,
// in stored order, so that the state reflects everything stored before a crash and not only
// its last snapshot. It must run before intake starts; it returns the uplinks replayed.
// Messages that are not uplinks of the current wire version are skipped.
func (f *Filter) Replay(ctx context.Context, js jetstream.JetStream, stream string, since time.Time) (int, error) {
	start := since.Add(-ReplayMargin)
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("replay %s for store-on-change: %w", stream, err)
	}
	if last := st.CachedInfo().State.LastTime; st.CachedInfo().State.Msgs == 0 || last.Before(start) {
		return 0, nil // nothing stored since: the usual case after a graceful stop
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{sluice.UplinkPrefix + ">"},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &start,
	})
	if err != nil {
		return 0, fmt.Errorf("replay %s for store-on-change: %w", stream, err)
	}
	n := 0
	for {
		batch, err := cons.Fetch(512, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return n, fmt.Errorf("replay %s for store-on-change: %w", stream, err)
		}
		got, pending := 0, uint64(1)
		for msg := range batch.Messages() {
			got++
			if meta, err := msg.Metadata(); err == nil {
				pending = meta.NumPending
			}
			if u, err := sluice.DecodeUplink(msg.Data()); err == nil {
				f.Commit(u)
				f.m.replayed.Inc()
				n++
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return n, fmt.Errorf("replay %s for store-on-change: %w", stream, err)
		}
		if got == 0 || pending == 0 {
			return n, nil
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
	}
}
