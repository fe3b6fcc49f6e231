package sink

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-iot/sluice"
)

// DLQStream returns the name of the stream holding dead letters (sluice.dlq.>).
func (b *Buffer) DLQStream() string { return b.cfg.Stream + "_DLQ" }

// DLQStreamConfig is the configuration of the dead-letter stream. It has a budget of its own
// (nats.dlq_max_bytes): the main stream being full of uplinks a down target has not committed
// must not keep a healthy target from recording a row it refused. When this budget is used up,
// storing a dead letter is retried (the batch waits), never skipped.
func (b *Buffer) DLQStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        b.DLQStream(),
		Description: "Sluice dead letters: rows and messages a database target refused",
		Subjects:    []string{sluice.DLQPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    int64(b.cfg.DLQMaxBytes),
		MaxAge:      b.cfg.MaxAge,
		Duplicates:  b.cfg.DuplicateWindow,
		Replicas:    b.replicas(),
	}
}

// ensureDLQStream creates or updates the dead-letter stream. It runs after the main stream was
// updated: a main stream made before the split gives up sluice.dlq.> first (the dead letters
// it holds stay there until max_age).
func (b *Buffer) ensureDLQStream(ctx context.Context) error {
	if _, err := b.js.CreateOrUpdateStream(ctx, b.DLQStreamConfig()); err != nil {
		return fmt.Errorf("create stream %s: %w", b.DLQStream(), err)
	}
	return nil
}
