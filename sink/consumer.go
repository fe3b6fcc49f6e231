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
// delivered to a previous process and never acknowledged (it was killed), or one made with
// another acknowledgement policy, is made anew from its acknowledgement floor, so that those
// messages come again at once and in order rather than after the acknowledgement wait.
func (t *Target) ensureConsumer(ctx context.Context, cc jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	js := t.buf.JetStream()
	if c, err := js.Consumer(ctx, t.buf.Stream(), cc.Durable); err == nil {
		old := c.CachedInfo()
		cc.DeliverPolicy, cc.OptStartTime, cc.OptStartSeq = old.Config.DeliverPolicy, old.Config.OptStartTime, old.Config.OptStartSeq
		if old.NumAckPending > 0 || old.Config.AckPolicy != cc.AckPolicy {
			if err := js.DeleteConsumer(ctx, t.buf.Stream(), cc.Durable); err != nil {
				return nil, fmt.Errorf("reset consumer %s: %w", cc.Durable, err)
			}
			if old.AckFloor.Stream > 0 {
				cc.DeliverPolicy, cc.OptStartTime, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, nil, old.AckFloor.Stream+1
			}
			t.log.Info().Int("unacknowledged", old.NumAckPending).Uint64("from_sequence", old.AckFloor.Stream+1).
				Msg("consumer reset to its acknowledgement floor")
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
