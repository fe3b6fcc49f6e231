package sink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-iot/sluice"
)

// ReplayOptions say what `sluice replay` re-delivers to one target. Times select messages by
// when the buffer stored them.
type ReplayOptions struct {
	All          bool      // all retained history
	Since, Until time.Time // with All false: stored at or after Since, and (when set) not after Until
	// Errors replays the stored decode failures instead of the uplinks: each is decoded again
	// by Redecode and written when that succeeds; those still failing are counted and left.
	Errors   bool
	Redecode func(ctx context.Context, f *sluice.Failure) (*sluice.Uplink, error)
	// Progress, when set, is called after every committed batch and once at the end.
	Progress func(ReplayProgress)
}

func (o ReplayOptions) validate() error {
	var errs []error
	if o.All == !o.Since.IsZero() {
		errs = append(errs, errors.New("replay: give either --all or --since"))
	}
	if o.All && !o.Until.IsZero() {
		errs = append(errs, errors.New("replay: --until needs --since, not --all"))
	}
	if !o.Until.IsZero() && o.Until.Before(o.Since) {
		errs = append(errs, errors.New("replay: --until is before --since"))
	}
	if o.Errors && o.Redecode == nil {
		errs = append(errs, errors.New("replay: --errors needs the decoders"))
	}
	return errors.Join(errs...)
}

// key identifies a replay, so that only the same replay resumes.
func (o ReplayOptions) key() string {
	k := "all"
	if !o.All {
		k = o.Since.UTC().Format(time.RFC3339Nano) + ".." + o.Until.UTC().Format(time.RFC3339Nano)
	}
	if o.Errors {
		k += " errors"
	}
	return k
}

// ReplayProgress is where a replay stands.
type ReplayProgress struct {
	Resumed  bool      // it continues a replay that was stopped
	Started  time.Time // when this run started
	Messages int64     // messages handled by this run
	Rows     int64     // rows committed by this run (new to the target)
	Failed   int64     // with Errors: failures that still do not decode
	Fraction float64   // 0..1 of the replay's range of the stream
	Done     bool
}

// Rate is the messages handled per second by this run.
func (p ReplayProgress) Rate() float64 {
	if s := time.Since(p.Started).Seconds(); s > 0 {
		return float64(p.Messages) / s
	}
	return 0
}

// ETA estimates the time left from the fraction done by this run.
func (p ReplayProgress) ETA(startFraction float64) time.Duration {
	done := p.Fraction - startFraction
	if done <= 0 || p.Done {
		return 0
	}
	el := time.Since(p.Started)
	return time.Duration(float64(el) * (1 - p.Fraction) / done)
}

const (
	replayMetaKey = "sluice_replay"
	replayMetaEnd = "sluice_replay_end"
	replayIdle    = 7 * 24 * time.Hour // an abandoned replay's consumer is removed after this
)

func replayConsumer(target string, errs bool) string {
	if errs {
		return "replay-errors-" + target
	}
	return "replay-" + target
}

// Replay re-delivers retained history to the target through the same path as live delivery:
// validation, idempotent merge (so repeating it never duplicates a row), isolation of refused
// rows. It is resumable: its place is a durable consumer acknowledged after every committed
// batch, so a replay cancelled (ctx) or killed continues where it stopped when started again
// with the same options; other options start a new replay. The replay ends at the last
// message stored when it first started. It returns ctx.Err() when cancelled. A Target runs
// either Run or Replay, never both at once (`sluice replay` builds its own).
func (t *Target) Replay(ctx context.Context, o ReplayOptions) (ReplayProgress, error) {
	p := ReplayProgress{Started: time.Now()}
	if err := o.validate(); err != nil {
		return p, err
	}
	if err := t.migrate(ctx); err != nil {
		return p, err
	}
	js := t.buf.JetStream()
	s, err := js.Stream(ctx, t.buf.Stream())
	if err != nil {
		return p, fmt.Errorf("replay: stream: %w", err)
	}
	name := replayConsumer(t.cfg.Name, o.Errors)
	var end, resumeAt uint64
	cons, err := s.Consumer(ctx, name)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return p, fmt.Errorf("replay: look up consumer: %w", err)
	}
	if err == nil {
		// The previous run's place is its acknowledgement floor. Its consumer is made anew
		// from there, so that what it had fetched but not committed is delivered at once
		// rather than after the acknowledgement wait.
		old := cons.CachedInfo()
		if old.Config.Metadata[replayMetaKey] == o.key() {
			end, _ = strconv.ParseUint(old.Config.Metadata[replayMetaEnd], 10, 64)
			resumeAt, p.Resumed = old.AckFloor.Stream+1, true
		} else {
			t.log.Warn().Str("previous", old.Config.Metadata[replayMetaKey]).Msg("replay: abandoning an unfinished replay with other options")
		}
		if err := s.DeleteConsumer(ctx, name); err != nil {
			return p, fmt.Errorf("replay: remove previous replay consumer: %w", err)
		}
	}
	if !p.Resumed {
		end = s.CachedInfo().State.LastSeq
	}
	cc := jetstream.ConsumerConfig{
		Durable:           name,
		Description:       "Sluice replay to target " + t.cfg.Name,
		FilterSubject:     sluice.UplinkPrefix + ">",
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           t.cfg.AckWait,
		MaxAckPending:     4 * t.cfg.BatchRows,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: replayIdle,
		Metadata:          map[string]string{replayMetaKey: o.key(), replayMetaEnd: strconv.FormatUint(end, 10)},
	}
	if o.Errors {
		cc.FilterSubject = sluice.ErrorPrefix + ">"
	}
	if !o.All {
		since := o.Since
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	if resumeAt > 1 {
		cc.DeliverPolicy, cc.OptStartTime, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, nil, resumeAt
	}
	if cons, err = s.CreateConsumer(ctx, cc); err != nil {
		return p, fmt.Errorf("replay: create consumer: %w", err)
	}

	first := s.CachedInfo().State.FirstSeq
	fraction := func(seq uint64) float64 {
		if end <= first {
			return 1
		}
		return min(1, float64(seq-min(seq, first))/float64(end-first))
	}
	report := func() {
		if o.Progress != nil {
			o.Progress(p)
		}
	}
	accept := func(m jetstream.Msg) bool {
		md, err := m.Metadata()
		if err != nil {
			return true
		}
		return md.Sequence.Stream <= end && (o.Until.IsZero() || !md.Timestamp.After(o.Until))
	}
	var read func(jetstream.Msg) (*sluice.Uplink, error)
	if o.Errors {
		read = func(m jetstream.Msg) (*sluice.Uplink, error) {
			f, err := sluice.DecodeFailure(m.Data())
			if err != nil {
				p.Failed++
				return nil, errSkip
			}
			u, err := o.Redecode(ctx, f)
			if err != nil {
				p.Failed++
				return nil, errSkip
			}
			return u, nil
		}
	}

	ci := cons.CachedInfo()
	p.Fraction = fraction(max(ci.AckFloor.Stream, resumeAt-min(resumeAt, 1)))
	it, err := cons.Messages(jetstream.PullMaxMessages(min(2*t.cfg.BatchRows, 10000)))
	if err != nil {
		return p, fmt.Errorf("replay: consume: %w", err)
	}
	defer it.Stop()
	t.log.Info().Str("replay", o.key()).Bool("resumed", p.Resumed).Uint64("end_sequence", end).Msg("replay started")
	report()
	done := resumeAt > end || ci.NumPending == 0 && ci.NumAckPending == 0
	var b batch
	for !done {
		b.reset()
		before := t.written.Load()
		done, err = t.fill(ctx, it, &b, accept, read)
		if errors.Is(err, errIdle) {
			info, ierr := cons.Info(ctx)
			done = ierr == nil && info.NumPending == 0 && info.NumAckPending == 0
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return p, ctx.Err()
			}
			return p, fmt.Errorf("replay: %w", err)
		}
		if err := t.flush(ctx, &b); err != nil {
			return p, err
		}
		p.Messages += int64(len(b.msgs))
		p.Rows += t.written.Load() - before
		if n := len(b.msgs); n > 0 {
			if md, err := b.msgs[n-1].Metadata(); err == nil {
				p.Fraction = fraction(md.Sequence.Stream)
				done = done || md.Sequence.Stream >= end || md.NumPending == 0
			}
		}
		report()
	}
	if err := s.DeleteConsumer(context.WithoutCancel(ctx), name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.log.Warn().Err(err).Msg("replay: remove its consumer")
	}
	p.Done, p.Fraction = true, 1
	report()
	t.log.Info().Int64("messages", p.Messages).Int64("rows", p.Rows).Msg("replay done")
	return p, nil
}
