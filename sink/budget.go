package sink

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-iot/sluice"
)

// Budget policies (BufferConfig.WhenFull).
const (
	// WhenFullRefuse refuses new publishes once the budget is used up: QoS 1/2 publishers get
	// quota exceeded (MQTT 5) or no PUBACK (MQTT 3.1.1) and keep their messages. Nothing
	// accepted is evicted before every target has committed it.
	WhenFullRefuse = "refuse"
	// WhenFullDropOldest makes room for new messages by evicting the oldest, committed or not;
	// each target counts what it lost in sluice_sink_lost_messages_total.
	WhenFullDropOldest = "drop_oldest"
)

// The stream keeps the uplinks every target has committed as history for replay, until its
// usage passes reclaimHigh of the budget; then the oldest committed uplinks are removed until
// it is back near reclaimLow. Uncommitted uplinks, decode failures and dead letters are never
// reclaimed (max_age still applies to all).
const (
	reclaimHigh  = 0.90
	reclaimLow   = 0.75
	reclaimEvery = time.Second
)

func (b *Buffer) discardPolicy() jetstream.DiscardPolicy {
	if b.cfg.WhenFull == WhenFullDropOldest {
		return jetstream.DiscardOld
	}
	return jetstream.DiscardNew
}

// floors is the set of consumers that hold back reclamation: the targets' durable consumers.
type floors struct {
	mu    sync.Mutex
	names []string
	last  time.Time
}

// holdFloor registers a consumer whose unacknowledged messages reclaim must keep.
func (b *Buffer) holdFloor(consumer string) {
	b.floor.mu.Lock()
	defer b.floor.mu.Unlock()
	b.floor.names = append(b.floor.names, consumer)
}

// reclaim removes the oldest uplinks every registered consumer has acknowledged when the
// stream is above reclaimHigh of its budget. It runs at most once per reclaimEvery; errors
// only postpone it. Safe for concurrent use.
func (b *Buffer) reclaim(ctx context.Context) {
	b.floor.mu.Lock()
	defer b.floor.mu.Unlock()
	if len(b.floor.names) == 0 || time.Since(b.floor.last) < reclaimEvery {
		return
	}
	b.floor.last = time.Now()
	if d, err := b.js.Stream(ctx, b.DLQStream()); err == nil {
		b.m.dlqBytes.Set(float64(d.CachedInfo().State.Bytes))
	}
	s, err := b.js.Stream(ctx, b.cfg.Stream)
	if err != nil {
		return
	}
	st := s.CachedInfo().State
	budget := float64(b.cfg.MaxBytes)
	b.m.usedBytes.Set(float64(st.Bytes))
	if float64(st.Bytes) < reclaimHigh*budget || st.Msgs == 0 {
		return
	}
	floor := st.LastSeq
	for _, name := range b.floor.names {
		c, err := s.Consumer(ctx, name)
		if err != nil {
			return // a target (or the hub) not consuming yet keeps everything
		}
		floor = min(floor, c.CachedInfo().AckFloor.Stream)
	}
	avg := float64(st.Bytes) / float64(st.Msgs)
	excess := uint64((float64(st.Bytes)-reclaimLow*budget)/avg) + 1
	upto := min(st.FirstSeq+excess, floor+1) // purge removes sequences below upto
	if upto <= st.FirstSeq {
		b.log.Warn().Uint64("used_bytes", st.Bytes).Int64("max_bytes", int64(b.cfg.MaxBytes)).
			Msg("buffer near its budget and nothing committed to reclaim: a target is behind")
		return
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(sluice.UplinkPrefix+">"), jetstream.WithPurgeSequence(upto)); err != nil {
		b.log.Warn().Err(err).Msg("reclaim committed history")
		return
	}
	after, err := s.Info(ctx)
	if err != nil {
		return
	}
	if n := int64(st.Msgs) - int64(after.State.Msgs); n > 0 {
		b.m.reclaimed.Add(float64(n))
		b.m.usedBytes.Set(float64(after.State.Bytes))
		b.log.Info().Int64("messages", n).Uint64("used_bytes", after.State.Bytes).Msg("reclaimed committed history")
	}
}
