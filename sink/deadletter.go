package sink

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-iot/sluice"
)

// deadLetter records what this target refused on DLQSubject(target), and returns once the
// buffer has stored it, retrying (the batch waits) until it has or ctx is cancelled. Its
// message id is derived from the source message and row, so a redelivered batch records the
// same refusal once within the buffer's duplicate window.
func (t *Target) deadLetter(ctx context.Context, msg jetstream.Msg, dl *sluice.DeadLetter, reason string) error {
	dl.V, dl.Target, dl.Subject, dl.At = sluice.WireVersion, t.cfg.Name, msg.Subject(), time.Now().UTC()
	if md, err := msg.Metadata(); err == nil {
		dl.Sequence = md.Sequence.Stream
	}
	id := deadLetterID(t.cfg.Name, dl) // before encoding, which may drop the row
	data, err := encodeDeadLetter(dl)
	if err != nil {
		return err
	}
	err = t.retryState(ctx, "store dead letter", false, func() error {
		return t.buf.Publish(context.WithoutCancel(ctx), sluice.DLQSubject(t.cfg.Name), id, data, true)
	})
	if err != nil {
		return err
	}
	t.m.deadLetters.WithLabelValues(reason).Inc()
	ev := t.warn.Warn().Uint64("sequence", dl.Sequence).Str("reason", reason).Str("error", dl.Error)
	if dl.SQLState != "" {
		ev = ev.Str("sqlstate", dl.SQLState)
	}
	if dl.Row != nil {
		ev = ev.Str("metric", dl.Row.Metric)
	}
	ev.Msg("dead letter")
	return nil
}

// encodeDeadLetter returns the JSON of dl. A row JSON cannot carry (a non-finite value, a year
// past 9999) is moved into the error text.
func encodeDeadLetter(dl *sluice.DeadLetter) ([]byte, error) {
	data, err := json.Marshal(dl)
	if err != nil && dl.Row != nil {
		dl.Error += fmt.Sprintf(" (row not representable in JSON: metric %q, value %v, time %s)",
			dl.Row.Metric, dl.Row.Value, dl.Row.Time.Format(time.RFC3339Nano))
		dl.Row = nil
		data, err = json.Marshal(dl)
	}
	if err != nil {
		return nil, fmt.Errorf("encode dead letter: %w", err)
	}
	return data, nil
}

func deadLetterID(target string, dl *sluice.DeadLetter) string {
	h := fnv.New128a()
	h.Write([]byte(target))
	h.Write([]byte{0})
	h.Write(strconv.AppendUint(nil, dl.Sequence, 10))
	if dl.Row != nil {
		h.Write([]byte{0})
		h.Write([]byte(dl.Row.Metric))
		h.Write([]byte{0})
		h.Write(strconv.AppendInt(nil, dl.Row.Time.UnixNano(), 10))
	}
	return "dlq-" + hex.EncodeToString(h.Sum(nil))
}
