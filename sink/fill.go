package sink

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/sluice-iot/sluice"
)

// ErrNearFull: the stream holds at least nearFullRatio of its budget. It still takes writes;
// readiness reports it as degraded, ahead of the refusals.
var ErrNearFull = errors.New("buffer nearly full")

const nearFullRatio = 0.9

// storeOverhead is what JetStream's file store adds to a message's subject, headers and data.
const storeOverhead = 64

// refusal remembers the size of the last message the stream refused for its budget. JetStream
// refuses a message that does not fit in what is left, so a stream settles below 100 % of its
// budget while refusing every publish: the buffer counts as full as long as what is left is
// less than that message needs.
type refusal struct{ size atomic.Uint64 }

func (r *refusal) note(msg *nats.Msg) {
	n := len(msg.Subject) + len(msg.Data) + storeOverhead
	for k, v := range msg.Header {
		n += len(k) + 4
		for _, s := range v {
			n += len(s)
		}
	}
	r.size.Store(uint64(n))
}

// fillError says how full a stream of used bytes is against max, when that matters: full
// (refusing: sluice.ErrBufferFull), near full (ErrNearFull), or nil.
func (b *Buffer) fillError(used uint64, max int64) error {
	if max <= 0 || b.cfg.WhenFull != WhenFullRefuse { // drop_oldest always takes writes
		return nil
	}
	left := uint64(0)
	if used < uint64(max) {
		left = uint64(max) - used
	}
	if need := b.refused.size.Load(); left == 0 || need > 0 && left < need {
		return fmt.Errorf("stream %s holds %d of %d bytes, too little left for the last message refused: %w", b.cfg.Stream, used, max, sluice.ErrBufferFull)
	}
	if float64(used) >= nearFullRatio*float64(max) {
		return fmt.Errorf("stream %s holds %.1f %% of its %d-byte budget: %w", b.cfg.Stream, 100*float64(used)/float64(max), max, ErrNearFull)
	}
	return nil
}
