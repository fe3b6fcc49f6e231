package sink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-iot/sluice"
)

// BufferStatus is the buffer's usage against its budget.
type BufferStatus struct {
	Stream    string     `json:"stream"`
	Messages  uint64     `json:"messages"`
	UsedBytes uint64     `json:"used_bytes"`
	MaxBytes  int64      `json:"max_bytes"`
	UsedRatio float64    `json:"used_ratio"`
	WhenFull  string     `json:"when_full"`
	Oldest    *time.Time `json:"oldest,omitempty"` // the oldest message retained
	// The dead-letter stream, with its own budget.
	DeadLetters        uint64 `json:"dead_letters"`
	DeadLetterBytes    uint64 `json:"dead_letter_bytes"`
	DeadLetterMaxBytes int64  `json:"dead_letter_max_bytes"`
}

// TargetStatus is where one target stands.
type TargetStatus struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Error string `json:"error,omitempty"`
	// LagMessages are the messages in the buffer this target has not committed yet: uplinks,
	// and the decode failures it counts in the device inventory.
	LagMessages uint64 `json:"lag_messages"`
	// LagBytes estimates their size (LagMessages times the stream's mean message size).
	LagBytes uint64 `json:"lag_bytes"`
	// Oldest is when the oldest uncommitted uplink was stored; OldestAgeSeconds its age.
	Oldest           *time.Time `json:"oldest,omitempty"`
	OldestAgeSeconds float64    `json:"oldest_age_seconds"`
	// RowsWritten counts the rows this process committed; DeadLetters the dead letters of
	// this target retained in the buffer; Lost the uplinks evicted before it committed them.
	RowsWritten int64  `json:"rows_written"`
	DeadLetters uint64 `json:"dead_letters"`
	Lost        int64  `json:"lost"`
	// TimescaleJobs is what the last check of the schema's TimescaleDB jobs found; absent on
	// plain PostgreSQL.
	TimescaleJobs *JobsStatus `json:"timescale_jobs,omitempty"`
}

// Status reports the buffer's usage. It needs an open buffer.
func (b *Buffer) Status(ctx context.Context) (BufferStatus, error) {
	s, err := b.js.Stream(ctx, b.cfg.Stream)
	if err != nil {
		return BufferStatus{}, fmt.Errorf("stream %s: %w", b.cfg.Stream, err)
	}
	st := s.CachedInfo().State
	bs := BufferStatus{
		Stream: b.cfg.Stream, Messages: st.Msgs, UsedBytes: st.Bytes, MaxBytes: int64(b.cfg.MaxBytes),
		UsedRatio: float64(st.Bytes) / float64(b.cfg.MaxBytes), WhenFull: b.cfg.WhenFull,
	}
	if st.Msgs > 0 {
		bs.Oldest = &st.FirstTime
	}
	bs.DeadLetterMaxBytes = int64(b.cfg.DLQMaxBytes)
	if d, err := b.js.Stream(ctx, b.DLQStream()); err == nil {
		bs.DeadLetters, bs.DeadLetterBytes = d.CachedInfo().State.Msgs, d.CachedInfo().State.Bytes
		b.m.dlqBytes.Set(float64(bs.DeadLetterBytes))
	}
	b.m.usedBytes.Set(float64(st.Bytes))
	return bs, nil
}

// Report returns the target's status, asking the buffer where its consumer stands.
func (t *Target) Report(ctx context.Context) TargetStatus {
	state, err := t.Status()
	ts := TargetStatus{Name: t.cfg.Name, State: state, RowsWritten: t.written.Load(), Lost: t.lost.Load(), TimescaleJobs: t.jobs.status()}
	if err != nil {
		ts.Error = err.Error()
	}
	if err := t.lag(ctx, &ts); err != nil && ts.Error == "" {
		ts.Error = err.Error()
	}
	return ts
}

func (t *Target) lag(ctx context.Context, ts *TargetStatus) error {
	js := t.buf.JetStream()
	s, err := js.Stream(ctx, t.buf.Stream())
	if err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	dlq := sluice.DLQSubject(t.cfg.Name)
	if d, err := js.Stream(ctx, t.buf.DLQStream()); err == nil {
		if info, err := d.Info(ctx, jetstream.WithSubjectFilter(dlq)); err == nil {
			ts.DeadLetters = info.State.Subjects[dlq]
		}
	}
	st := s.CachedInfo().State
	from := uint64(0) // the stream sequence the oldest uncommitted uplink is at or after
	c, err := s.Consumer(ctx, consumerName(t.cfg.Name))
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		// Not consuming yet (the database has been down since start-up): the consumer will
		// be made to start where the target starts, so what waits for it is every uplink
		// held for "all" or a start time (an upper bound), none for "new".
		if policy, _, _ := parseStart(t.cfg.Start); policy == jetstream.DeliverNewPolicy {
			return nil
		}
		if ts.LagMessages, err = t.uplinksHeld(ctx, s); err != nil {
			return err
		}
		from = st.FirstSeq
	case err != nil:
		return fmt.Errorf("consumer: %w", err)
	default:
		ci := c.CachedInfo()
		ts.LagMessages = ci.NumPending + uint64(ci.NumAckPending)
		from = ci.AckFloor.Stream + 1
	}
	if st.Msgs > 0 {
		ts.LagBytes = uint64(float64(ts.LagMessages) * float64(st.Bytes) / float64(st.Msgs))
	}
	if ts.LagMessages > 0 {
		m, err := s.GetMsg(ctx, from, jetstream.WithGetMsgSubject(sluice.UplinkPrefix+">"))
		if err == nil {
			ts.Oldest = &m.Time
			ts.OldestAgeSeconds = time.Since(m.Time).Seconds()
		}
	}
	return nil
}

// uplinksHeld counts the uplinks the stream holds (its failures and dead letters apart).
func (t *Target) uplinksHeld(ctx context.Context, s jetstream.Stream) (uint64, error) {
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(sluice.UplinkPrefix+">"))
	if err != nil {
		return 0, fmt.Errorf("stream: %w", err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}

// startLossCount sets where counting evictions starts: after the acknowledgement floor of a
// consumer that existed (what was evicted while Sluice was down counts too); a new consumer
// starts from its first delivery.
func (t *Target) startLossCount(cons jetstream.Consumer) {
	t.prevSeq = cons.CachedInfo().AckFloor.Stream
}

// noteDelivery counts the messages the buffer evicted before delivering them to this target:
// a first delivery whose stream sequence skips past the previous one, over sequences the
// stream no longer holds. (A skip over sequences it holds is other subjects: failures and
// dead letters; those evicted along with uplinks are counted too, so the count errs high.)
func (t *Target) noteDelivery(ctx context.Context, msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil || md.NumDelivered > 1 {
		return
	}
	seq, prev := md.Sequence.Stream, t.prevSeq
	t.prevSeq = max(prev, seq)
	if prev == 0 || seq <= prev+1 {
		return
	}
	s, err := t.buf.JetStream().Stream(ctx, t.buf.Stream())
	if err != nil {
		return
	}
	if first := s.CachedInfo().State.FirstSeq; first > prev+1 {
		n := int64(min(first, seq) - (prev + 1))
		t.lost.Add(n)
		t.m.lost.Add(float64(n))
		t.warn.Error().Int64("messages", n).Str("when_full", t.buf.cfg.WhenFull).
			Msg("the buffer evicted messages before this target committed them")
	}
}

// observe updates the lag gauge, at most every two seconds.
func (t *Target) observe(ctx context.Context, cons jetstream.Consumer) {
	if time.Since(t.lastLag) < 2*time.Second {
		return
	}
	t.lastLag = time.Now()
	ci, err := cons.Info(ctx)
	if err != nil {
		return
	}
	t.m.pending.Set(float64(ci.NumPending + uint64(ci.NumAckPending)))
}
