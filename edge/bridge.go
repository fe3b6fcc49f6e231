package edge

import (
	"context"
	"fmt"
	"sync"

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

// startLoRaWAN starts the registry watcher and the subscriptions; stop ends them and waits.
func (s *Site) startLoRaWAN() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.registry.Run(ctx); err != nil {
			s.log.Error().Err(err).Str("component", "registry").Msg("registry not watched: changes need a restart")
		}
	})
	for _, sub := range s.bridges {
		wg.Go(func() { sub.Run(ctx) })
	}
	return func() {
		cancel()
		wg.Wait()
	}
}
