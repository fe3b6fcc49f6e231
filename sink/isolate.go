package sink

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// writeIsolating writes the rows of b so that a row the database refuses costs only itself.
// It writes all rows at once; when the database refuses the batch for its data (faultOf), it
// splits the range in halves and writes each, down to single rows, which become dead letters
// with the SQLSTATE and message. Every committed part is final (the merge is idempotent, so a
// part committed before a crash is skipped on redelivery). Transient errors are retried with
// backoff where they happen, so isolation never starts over. It returns an error only when ctx
// is cancelled first.
//
// Cost: k refused rows in n take about 2·k·log2(n) extra writes, each of a shrinking range.
func (t *Target) writeIsolating(ctx context.Context, b *batch) error {
	type span struct{ lo, hi int }
	stack := []span{{0, len(b.rows)}}
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if s.lo >= s.hi {
			continue
		}
		refused, err := t.attempt(ctx, b, s.lo, s.hi)
		if err != nil {
			return err
		}
		if refused == nil {
			continue
		}
		t.m.errors.WithLabelValues("data").Inc()
		if s.hi-s.lo == 1 {
			msg, dl := b.rowLetter(s.lo)
			_, dl.SQLState = faultOf(refused)
			dl.Error = pgMessage(refused)
			if err := t.deadLetter(ctx, msg, dl, "refused"); err != nil {
				return err
			}
			continue
		}
		mid := s.lo + (s.hi-s.lo)/2
		stack = append(stack, span{mid, s.hi}, span{s.lo, mid}) // lower half first
	}
	if !b.invStored && b.inv.len() > 0 {
		// No rows to store (all filtered or refused), but the devices were seen.
		if _, err := t.attempt(ctx, b, 0, 0); err != nil {
			return err
		}
	}
	return nil
}

// attempt writes rows[lo:hi], retrying transient errors until they pass. It returns the
// database's refusal when the rows themselves are the problem, and an error only when ctx
// was cancelled.
func (t *Target) attempt(ctx context.Context, b *batch, lo, hi int) (refused error, err error) {
	err = t.retry(ctx, "write batch", func() error {
		t.keepBatch(b)
		var inv *inventory
		if !b.invStored {
			inv = &b.inv
		}
		n, err := t.w.writeWith(context.WithoutCancel(ctx), b.rows[lo:hi], inv)
		if err == nil {
			b.invStored = true
			t.m.rows.Add(float64(n))
			t.written.Add(n)
			return nil
		}
		if f, _ := faultOf(err); f == faultData {
			refused = err
			return nil
		}
		return err
	})
	return refused, err
}

// pgMessage is the database's own words for a refusal, without the wrapping of the writer.
func pgMessage(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		m := pe.Message
		if pe.Detail != "" {
			m += ": " + pe.Detail
		}
		return m
	}
	return err.Error()
}
