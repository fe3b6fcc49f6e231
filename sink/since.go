package sink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-iot/sluice"
)

// UplinksSince calls fn with every uplink stored at or after since, in stored order, until it
// has read what the stream held when the read began. Messages that are not uplinks of the
// current wire version are skipped. It returns the uplinks given to fn. Valid after Open.
func (b *Buffer) UplinksSince(ctx context.Context, since time.Time, fn func(*sluice.Uplink)) (int, error) {
	stream := b.cfg.Stream
	st, err := b.js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("read %s since %s: %w", stream, since.Format(time.RFC3339), err)
	}
	if last := st.CachedInfo().State.LastTime; st.CachedInfo().State.Msgs == 0 || last.Before(since) {
		return 0, nil // nothing stored since: the usual case after a graceful stop
	}
	cons, err := b.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{sluice.UplinkPrefix + ">"},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	if err != nil {
		return 0, fmt.Errorf("read %s since %s: %w", stream, since.Format(time.RFC3339), err)
	}
	n := 0
	for {
		batch, err := cons.Fetch(512, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return n, fmt.Errorf("read %s since %s: %w", stream, since.Format(time.RFC3339), err)
		}
		got, pending := 0, uint64(1)
		for msg := range batch.Messages() {
			got++
			if meta, err := msg.Metadata(); err == nil {
				pending = meta.NumPending
			}
			if u, err := sluice.DecodeUplink(msg.Data()); err == nil {
				fn(u)
				n++
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return n, fmt.Errorf("read %s since %s: %w", stream, since.Format(time.RFC3339), err)
		}
		if got == 0 || pending == 0 {
			return n, nil
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
	}
}
