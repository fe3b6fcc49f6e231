package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice"
)

// Target states, as reported by Status.
const (
	StateStarting = "starting" // not consuming yet: migrating, or its consumer not made yet
	StateOK       = "ok"
	StateDegraded = "degraded" // the last attempt to reach the database failed; retrying
)

// Target forwards the buffer's uplinks to one database: a durable pull consumer of its own,
// batches by rows and wait, rows validated, one transaction per batch (or per part of it when
// the database refuses rows), and the acknowledgement only after everything in the batch is
// committed or recorded as a dead letter. Transient errors are retried with capped exponential
// backoff; nothing is acknowledged that was not committed or dead-lettered. Targets share
// nothing but the buffer, so one that is down never stalls another.
type Target struct {
	cfg  TargetConfig
	buf  *Buffer
	log  zerolog.Logger
	warn zerolog.Logger // sampled, for per-row warnings
	m    *targetMetrics
	pool *pgxpool.Pool
	w    *writer
	jobs *jobWatch // TimescaleDB job checks (jobs_watch.go)

	mu        sync.Mutex
	state     string
	lastErr   error
	consuming bool // its consumer exists: until then the target is starting, not ok
	lastLag   time.Time
	prevSeq   uint64       // stream sequence of the last message delivered (evictions, status.go)
	written   atomic.Int64 // rows committed since start
	lost      atomic.Int64 // messages evicted before this target committed them
	closeOnce sync.Once
}

// NewTarget validates cfg and builds a target; it connects to nothing until Run.
func NewTarget(cfg TargetConfig, buf *Buffer, log zerolog.Logger, reg prometheus.Registerer) (*Target, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pool, err := newPool(cfg.DatabaseURL, cfg.Schema, cfg.MaxConns)
	if err != nil {
		return nil, err
	}
	log = log.With().Str("component", "sink").Str("target", cfg.Name).Logger()
	buf.holdFloor(consumerName(cfg.Name))
	jobs := newJobWatch(cfg.Jobs, cfg.Schema, log)
	reg.MustRegister(newJobCollector(cfg.Name, jobs))
	m := newTargetMetrics(reg, cfg.Name)
	w := newWriter(pool, cfg.Schema, cfg.Storage)
	w.fallbacks = m.duplicates
	return &Target{
		cfg:   cfg,
		buf:   buf,
		log:   log,
		warn:  log.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Second}),
		m:     m,
		pool:  pool,
		w:     w,
		jobs:  jobs,
		state: StateStarting,
	}, nil
}

// Name returns the target's name.
func (t *Target) Name() string { return t.cfg.Name }

// Status returns the target's state and, when degraded, the last error.
func (t *Target) Status() (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state, t.lastErr
}

func (t *Target) setState(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case err == nil && !t.consuming:
		t.state, t.lastErr = StateStarting, nil
	case err == nil:
		t.state, t.lastErr = StateOK, nil
	default:
		t.state, t.lastErr = StateDegraded, err
	}
}

// Run migrates the schema (when configured), then consumes and writes until ctx is cancelled.
// On cancellation it stops fetching, finishes the batch in hand if the database takes it, and
// returns nil; unacknowledged messages are redelivered on the next start.
func (t *Target) Run(ctx context.Context) error {
	if err := t.migrate(ctx); err != nil {
		return nil // cancelled before the database came up
	}
	policy, at, _ := parseStart(t.cfg.Start)
	cc := jetstream.ConsumerConfig{
		Durable:     consumerName(t.cfg.Name),
		Description: "Sluice sink target " + t.cfg.Name,
		// Failures are read too, for the device inventory's count of them (inventory.fail).
		FilterSubjects: []string{sluice.UplinkPrefix + ">", sluice.ErrorPrefix + ">"},
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        t.cfg.AckWait,
		MaxAckPending:  4 * t.cfg.BatchRows,
		DeliverPolicy:  policy,
		OptStartTime:   at,
	}
	// A buffer that cannot make the consumer now (an external server restarting) is retried
	// like a database: one target never takes the site or another target down.
	var cons jetstream.Consumer
	var it jetstream.MessagesContext
	err := t.retry(ctx, "start consuming", func() (err error) {
		if cons, err = t.ensureConsumer(ctx, cc); err != nil {
			return err
		}
		// "ok" from here on: a target reported ok has its place in the stream, so that what
		// is published after that is due to it even under start: new.
		t.mu.Lock()
		t.consuming = true
		t.mu.Unlock()
		if it, err = cons.Messages(jetstream.PullMaxMessages(t.prefetch())); err != nil {
			return fmt.Errorf("consume: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil // cancelled
	}
	defer it.Stop()
	t.setState(nil)
	t.startLossCount(cons)
	t.log.Info().Str("start", t.cfg.Start).Msg("sink started")

	// Up to two batches are written at once (two database connections, so that PostgreSQL
	// can use two cores) while the next one is fetched and decoded. Every message is
	// acknowledged on its own after its batch commits, so batches may commit in any order.
	const writers = 2
	var bufs [writers + 1]batch // the one being filled never has a write in flight
	cur := 0
	var inFlight []chan error // oldest first
	// settle waits for the oldest write; false when ctx was cancelled before it was written.
	settle := func() bool {
		done := inFlight[0]
		inFlight = inFlight[1:]
		if err := <-done; err != nil {
			return false
		}
		t.observe(ctx, cons)
		t.buf.reclaim(ctx)
		return true
	}
	settleAll := func() bool {
		ok := true
		for len(inFlight) > 0 {
			ok = settle() && ok
		}
		return ok
	}
	for {
		b := &bufs[cur]
		b.reset()
		if _, err := t.fill(ctx, it, b, nil, nil); err != nil {
			switch {
			case ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed):
				settleAll()
				return nil
			case errors.Is(err, errIdle):
				if len(inFlight) > 0 {
					if !settleAll() {
						return nil
					}
					continue
				}
				t.observe(ctx, cons)
				t.buf.reclaim(ctx)
			default:
				t.log.Warn().Err(err).Msg("consume")
			}
			continue
		}
		if len(inFlight) == writers && !settle() {
			settleAll()
			return nil // cancelled while the database was unreachable: redelivered on restart
		}
		done := make(chan error, 1)
		go func() { done <- t.flush(ctx, b) }()
		inFlight = append(inFlight, done)
		cur = (cur + 1) % len(bufs)
	}
}

func (t *Target) migrate(ctx context.Context) error {
	if !t.cfg.Migrate {
		return nil
	}
	return t.retry(ctx, "migrate", func() error {
		_, err := Migrate(ctx, t.pool, t.cfg, t.log)
		return err
	})
}

// errIdle is fill finding no message for idleAfter: time for housekeeping.
var errIdle = errors.New("no message")

// errSkip is a message that holds nothing for this target.
var errSkip = errors.New("skip")

const idleAfter = 2 * time.Second

// fill waits for one message (up to idleAfter, then errIdle), then adds messages to b until it
// holds batch_rows rows or batch_wait has passed. Invalid readings and unreadable messages become
// dead letters on the way. When accept is set, the first message it rejects ends the batch,
// is left unacknowledged, and fill reports done. read turns a message into an uplink (nil:
// the wire decoding); errSkip from it leaves the message out without a dead letter.
func (t *Target) fill(ctx context.Context, it jetstream.MessagesContext, b *batch, accept func(jetstream.Msg) bool,
	read func(jetstream.Msg) (*sluice.Uplink, error)) (done bool, err error) {
	wctx, cancel := context.WithTimeout(ctx, idleAfter)
	msg, err := it.Next(jetstream.NextContext(wctx))
	cancel()
	if err != nil {
		if ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
			return false, errIdle
		}
		return false, err
	}
	now := time.Now()
	deadline := now.Add(t.cfg.BatchWait)
	for {
		if accept != nil && !accept(msg) {
			return true, nil
		}
		if accept == nil {
			t.noteDelivery(ctx, msg)
		}
		var u *sluice.Uplink
		switch {
		case read == nil && strings.HasPrefix(msg.Subject(), sluice.ErrorPrefix):
			b.inv.fail(msg.Data()) // nothing to write but the device's count of failures
			u, err = nil, errSkip
		case read == nil:
			u, err = sluice.DecodeUplinkForStore(msg.Data())
		default:
			u, err = read(msg)
		}
		if errors.Is(err, errSkip) {
			u, err = &sluice.Uplink{}, nil // acknowledged with the batch, nothing to write
		}
		for _, dl := range b.add(msg, u, err, t.cfg.Limits, now) {
			reason := "invalid"
			if dl.Row == nil {
				reason = "unreadable"
			}
			if err := t.deadLetter(ctx, msg, dl, reason); err != nil {
				return false, err
			}
		}
		wait := time.Until(deadline)
		if len(b.rows) >= t.cfg.BatchRows || wait <= 0 || ctx.Err() != nil {
			return false, nil
		}
		if msg, err = it.Next(jetstream.NextMaxWait(wait)); err != nil {
			return false, nil
		}
	}
}

// flush writes the rows of b, isolating refused rows, then acknowledges its messages. It
// returns an error only when ctx was cancelled before everything was written.
func (t *Target) flush(ctx context.Context, b *batch) error {
	if len(b.msgs) == 0 {
		return nil
	}
	start := time.Now()
	b.progress = start
	if err := t.writeIsolating(ctx, b); err != nil {
		return err
	}
	// Every message is acknowledged on its own. Acknowledging the last one for all (AckAll)
	// would also acknowledge an earlier message this process never received or committed: one
	// delivered to a process killed since, or lost in transit on a reconnect.
	var ackErr error
	for _, m := range b.msgs {
		if err := m.Ack(); err != nil && ackErr == nil {
			ackErr = err
		}
	}
	if ackErr != nil {
		t.log.Warn().Err(ackErr).Msg("ack batch (it will be redelivered and merged idempotently)")
	}
	t.buf.noteHeld(b.msgs) // role worker: what the hub holds of each site (held.go)
	t.m.batches.Inc()
	t.m.batchRows.Observe(float64(len(b.rows)))
	t.m.batchSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// prefetch bounds the messages pulled ahead of the batch in hand: batch_rows messages, which is
// several batches of readings (a message carries one or more) and is held in memory as
// delivered, about 1.5 KiB each with its headers. A worker sharing the consumer pulls one batch
// ahead at most too: a message's ack_wait runs while it waits in this buffer, and one left
// there too long is delivered to another worker as well (fleet.go).
func (t *Target) prefetch() int {
	return min(t.cfg.BatchRows, 10000)
}

// keepBatch tells JetStream the batch is still being worked on, so that a long retry or
// isolation does not get it redelivered elsewhere.
func (t *Target) keepBatch(b *batch) {
	if time.Since(b.progress) < t.cfg.AckWait/3 {
		return
	}
	for _, m := range b.msgs {
		_ = m.InProgress()
	}
	b.progress = time.Now()
}

// retry calls fn until it succeeds or ctx is cancelled, backing off exponentially between
// retry_min and retry_max. The target is degraded while fn fails; every failure is logged.
func (t *Target) retry(ctx context.Context, what string, fn func() error) error {
	return t.retryState(ctx, what, true, fn)
}

// retryState is retry; with db false, fn does not reach the database and leaves the target's
// state alone (storing a dead letter must not mark a database that is down as ok).
func (t *Target) retryState(ctx context.Context, what string, db bool, fn func() error) error {
	backoff := t.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			if attempt > 1 {
				t.log.Info().Int("attempts", attempt).Msg(what + ": succeeded after retrying")
			}
			if db {
				t.setState(nil)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if db {
			t.setState(err)
			t.m.errors.WithLabelValues("transient").Inc()
		}
		_, state := faultOf(err)
		ev := t.log.Warn()
		if attempt == 1 || attempt%10 == 0 {
			ev = t.log.Error() // nothing is dropped: say it loudly, then every tenth attempt
		}
		ev.Err(err).Str("sqlstate", state).Int("attempt", attempt).Dur("backoff", backoff).Msg(what + " failed; retrying")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, t.cfg.RetryMax)
	}
}

// Close releases the database pool. It is idempotent.
func (t *Target) Close() error {
	t.closeOnce.Do(t.pool.Close)
	return nil
}

// Pool returns the target's connection pool (for migrations run by the command line).
func (t *Target) Pool() *pgxpool.Pool { return t.pool }
