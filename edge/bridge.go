package edge

import (
	"fmt"

	"github.com/sluice-iot/sluice/bridge"
	"github.com/sluice-iot/sluice/hooks"
)

// Subscriptions to other brokers feed the ingest pipeline.
var _ bridge.Handler = (*hooks.Ingest)(nil)

// newBridges builds the subscriptions to other brokers, which feed the ingest hook.
func (s *Site) newBridges() error {
	metrics := bridge.NewMetrics(s.reg)
	for i, sc := range s.cfg.Subscribe {
		sub, err := bridge.New(sc, s.ingest, s.log, metrics)
		if err != nil {
			return fmt.Errorf("subscribe[%d]: %w", i, err)
		}
		s.bridges = append(s.bridges, sub)
	}
	return nil
}

// bridgePart holds one subscription to another broker: intake, like the broker's listeners.
func bridgePart(b *bridge.Subscriber) part {
	return part{name: "bridge", run: b.Run}
}
