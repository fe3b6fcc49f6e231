package sink

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

func consumerName(target string) string { return "sink-" + target }

// ensureConsumer creates the durable consumer, or updates it keeping where it started: a
// consumer that exists has its place, whatever start says now. A consumer holding messages
// delivered to a previous process and never acknowledged (it was killed) is reset to its
// acknowledgement floor, so that those messages come again at once and in order rather than
// after the acknowledgement wait.
//
// The reset is one request to the server (consumer reset): the consumer is never absent, so
// a kill at any moment leaves it with its place, and reclaim (budget.go) never sees it
// missing. Only a consumer made with another acknowledgement policy, or a server without the
// reset request, is deleted and made anew, from the sequence after its floor (never by its
// original deliver policy: "new" would skip everything it had not acknowledged).
//
// In role worker the consumer is shared by every worker of the hub and is never reset for
// unacknowledged messages: they are redelivered when their ack_wait expires.
func (t *Target) ensureConsumer(ctx context.Context, cc jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	js := t.buf.JetStream()
	if c, err := js.Consumer(ctx, t.buf.Stream(), cc.Durable); err == nil {
		old := c.CachedInfo()
		cc.DeliverPolicy, cc.OptStartTime, cc.OptStartSeq = old.Config.DeliverPolicy, old.Config.OptStartTime, old.Config.OptStartSeq
		// Workers share the consumer: what is unacknowledged may be another worker's batch in
		// hand, and one that died has its batch redelivered after ack_wait (fleet.go).
		shared := t.buf.cfg.Role == RoleWorker
		if (old.NumAckPending > 0 && !shared) || old.Config.AckPolicy != cc.AckPolicy {
			if err := t.resetConsumer(ctx, old, &cc); err != nil {
				return nil, err
			}
		}
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("look up consumer %s: %w", cc.Durable, err)
	}
	c, err := js.CreateOrUpdateConsumer(ctx, t.buf.Stream(), cc)
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", cc.Durable, err)
	}
	return c, nil
}

// resetConsumer moves the consumer old back to its acknowledgement floor. When it has to be
// made anew, cc is set to start right after the floor.
func (t *Target) resetConsumer(ctx context.Context, old *jetstream.ConsumerInfo, cc *jetstream.ConsumerConfig) error {
	js := t.buf.JetStream()
	from := old.AckFloor.Stream + 1
	log := t.log.Info().Int("unacknowledged", old.NumAckPending).Uint64("from_sequence", from)
	if old.Config.AckPolicy == cc.AckPolicy {
		_, err := js.ResetConsumer(ctx, t.buf.Stream(), cc.Durable)
		if err == nil {
			log.Msg("consumer reset to its acknowledgement floor")
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t.log.Warn().Err(err).Msg("consumer reset request failed; making the consumer anew from its acknowledgement floor")
	}
	if err := js.DeleteConsumer(ctx, t.buf.Stream(), cc.Durable); err != nil {
		return fmt.Errorf("reset consumer %s: %w", cc.Durable, err)
	}
	cc.DeliverPolicy, cc.OptStartTime, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, nil, from
	log.Msg("consumer made anew from its acknowledgement floor")
	return nil
}
