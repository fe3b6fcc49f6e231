package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice"
)

// Target states, as reported by Status.
const (
	StateStarting = "starting"
	StateOK       = "ok"
	StateDegraded = "degraded" // the last attempt to reach the database failed; retrying
)

const ackWait = 30 * time.Second

// Target forwards the buffer's uplinks to one database: a durable pull consumer, batches by
// rows and wait, one transaction per batch, and the acknowledgement only after the commit.
// Database errors are retried with capped exponential backoff; nothing is acknowledged that
// was not committed.
type Target struct {
	cfg  TargetConfig
	buf  *Buffer
	log  zerolog.Logger
	m    *targetMetrics
	pool *pgxpool.Pool
	w    *writer

	mu        sync.Mutex
	state     string
	lastErr   error
	lastLag   time.Time
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
	return &Target{
		cfg:   cfg,
		buf:   buf,
		log:   log.With().Str("component", "sink").Str("target", cfg.Name).Logger(),
		m:     newTargetMetrics(reg, cfg.Name),
		pool:  pool,
		w:     newWriter(pool, cfg.Schema),
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
	if err == nil {
		t.state, t.lastErr = StateOK, nil
	} else {
		t.state, t.lastErr = StateDegraded, err
	}
}

// Run migrates the schema (when configured), then consumes and writes until ctx is cancelled.
// On cancellation it stops fetching, finishes the batch in hand if the database takes it, and
// returns nil; unacknowledged messages are redelivered on the next start.
func (t *Target) Run(ctx context.Context) error {
	if t.cfg.Migrate {
		err := t.retry(ctx, "migrate", func() error {
			_, err := Migrate(ctx, t.pool, t.cfg.Schema, t.log)
			return err
		})
		if err != nil {
			return nil // cancelled before the database came up
		}
	}
	cons, err := t.buf.JetStream().CreateOrUpdateConsumer(ctx, t.buf.Stream(), jetstream.ConsumerConfig{
		Durable:       "sink-" + t.cfg.Name,
		Description:   "Sluice sink target " + t.cfg.Name,
		FilterSubject: sluice.UplinkPrefix + ">",
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       ackWait,
		MaxAckPending: 4 * t.cfg.BatchRows,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("sink %s: create consumer: %w", t.cfg.Name, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(min(2*t.cfg.BatchRows, 10000)))
	if err != nil {
		return fmt.Errorf("sink %s: consume: %w", t.cfg.Name, err)
	}
	defer it.Stop()
	t.setState(nil)
	t.log.Info().Msg("sink started")

	var msgs []jetstream.Msg
	var rows []row
	for {
		msgs, rows = msgs[:0], rows[:0]
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			t.log.Warn().Err(err).Msg("consume")
			continue
		}
		deadline := time.Now().Add(t.cfg.BatchWait)
		for {
			msgs = append(msgs, msg)
			rows = t.appendRows(ctx, rows, msg)
			wait := time.Until(deadline)
			if len(rows) >= t.cfg.BatchRows || wait <= 0 || ctx.Err() != nil {
				break
			}
			if msg, err = it.Next(jetstream.NextMaxWait(wait)); err != nil {
				break
			}
		}
		if err := t.flush(ctx, msgs, rows); err != nil {
			return nil // cancelled while the database was unreachable: redelivered on restart
		}
		t.updateLag(ctx, cons)
	}
}

// appendRows adds the readings of one message to rows. A message that cannot be read is
// recorded on the dead-letter subject and contributes nothing.
func (t *Target) appendRows(ctx context.Context, rows []row, msg jetstream.Msg) []row {
	u, err := sluice.DecodeUplink(msg.Data())
	if err != nil {
		t.deadLetter(ctx, msg, &sluice.DeadLetter{Data: msg.Data(), Error: err.Error()})
		return rows
	}
	for _, r := range u.Readings {
		if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
			rr := r
			t.deadLetter(ctx, msg, &sluice.DeadLetter{UplinkID: u.ID, Tenant: u.Tenant, Device: u.Device, Row: &rr,
				Error: "value is not a finite number"})
			continue
		}
		rows = append(rows, row{
			key:   seriesKey{u.Tenant, u.Device, r.Metric},
			unit:  r.Unit,
			time:  r.Time,
			value: r.Value,
		})
	}
	return rows
}

// deadLetter records what this target refused. It waits for the buffer to store the record.
func (t *Target) deadLetter(ctx context.Context, msg jetstream.Msg, dl *sluice.DeadLetter) {
	dl.V, dl.Target, dl.Subject, dl.At = sluice.WireVersion, t.cfg.Name, msg.Subject(), time.Now().UTC()
	if md, err := msg.Metadata(); err == nil {
		dl.Sequence = md.Sequence.Stream
	}
	b, _ := json.Marshal(dl)
	if err := t.buf.Publish(context.WithoutCancel(ctx), sluice.DLQSubject(t.cfg.Name), "", b, true); err != nil {
		t.log.Error().Err(err).Uint64("sequence", dl.Sequence).Str("error", dl.Error).Msg("dead letter not stored")
		return
	}
	t.m.deadLetters.Inc()
	t.log.Warn().Uint64("sequence", dl.Sequence).Str("error", dl.Error).Msg("dead letter")
}

// flush writes rows until the database takes them, then acknowledges msgs. It returns an error
// only when ctx was cancelled before the write succeeded.
func (t *Target) flush(ctx context.Context, msgs []jetstream.Msg, rows []row) error {
	start := time.Now()
	if len(rows) > 0 {
		lastProgress := time.Now()
		err := t.retry(ctx, "write batch", func() error {
			if time.Since(lastProgress) > ackWait/3 { // keep the batch ours while retrying
				for _, m := range msgs {
					_ = m.InProgress()
				}
				lastProgress = time.Now()
			}
			n, err := t.w.write(context.WithoutCancel(ctx), rows)
			if err == nil {
				t.m.rows.Add(float64(n))
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	// AckAll: acknowledging the last message acknowledges the whole batch.
	if err := msgs[len(msgs)-1].Ack(); err != nil {
		t.log.Warn().Err(err).Msg("ack batch (it will be redelivered and merged idempotently)")
	}
	t.m.batches.Inc()
	t.m.batchRows.Observe(float64(len(rows)))
	t.m.batchSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// retry calls fn until it succeeds or ctx is cancelled, backing off exponentially between
// retry_min and retry_max. The target is degraded while fn fails.
func (t *Target) retry(ctx context.Context, what string, fn func() error) error {
	backoff := t.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			if attempt > 1 {
				t.log.Info().Int("attempts", attempt).Msg(what + ": database reachable again")
			}
			t.setState(nil)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t.setState(err)
		t.m.errors.WithLabelValues("transient").Inc()
		t.log.Warn().Err(err).Int("attempt", attempt).Dur("backoff", backoff).Msg(what + " failed; retrying")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, t.cfg.RetryMax)
	}
}

func (t *Target) updateLag(ctx context.Context, cons jetstream.Consumer) {
	if time.Since(t.lastLag) < 2*time.Second {
		return
	}
	t.lastLag = time.Now()
	info, err := cons.Info(ctx)
	if err == nil {
		t.m.pending.Set(float64(info.NumPending))
	}
}

// Close releases the database pool. It is idempotent.
func (t *Target) Close() error {
	t.closeOnce.Do(t.pool.Close)
	return nil
}

// Pool returns the target's connection pool (for migrations run by the command line).
func (t *Target) Pool() *pgxpool.Pool { return t.pool }
