package edge

import (
	"context"
	"fmt"
	"sync"

	"github.com/sluice-iot/sluice/hooks"
)

// Subscriptions feed the ingest pipeline.
var _ hooks.Handler = (*hooks.Ingest)(nil)

// lorawan is the part of a site serving LoRaWAN network servers: the device registry (reloaded
// while the site runs), the de-duplication window, and the subscriptions to other brokers.
type lorawan struct {
	registry    *hooks.Registry
	subscribers []*hooks.Subscriber
}

// newLoRaWAN builds the registry and the de-duplication window into the ingest parts. The
// registry file is read here, so its problems stop the start.
func (s *Site) newLoRaWAN(parts *hooks.IngestParts) error {
	reg, err := hooks.NewRegistry(s.cfg.Registry, s.decoders, s.log, s.reg)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	dedup, err := hooks.NewDedup(s.cfg.Dedup, s.reg)
	if err != nil {
		return fmt.Errorf("dedup: %w", err)
	}
	parts.Registry, parts.Dedup = reg, dedup
	for i, r := range s.cfg.Routes {
		if p := r.LoRaWAN.UnknownDevices; s.cfg.Registry.File == "" && (p == hooks.PolicyPark || p == hooks.PolicyReject) {
			s.log.Warn().Str("component", "registry").Int("route", i).Str("unknown_devices", p).
				Msg("no registry.file: every device on this route is unknown and is " + p + "ed")
		}
	}
	s.lorawan.registry = reg
	return nil
}

// newSubscribers builds the subscriptions to other brokers, which feed the ingest hook.
func (s *Site) newSubscribers() error {
	metrics := hooks.NewSubscriberMetrics(s.reg)
	for i, sc := range s.cfg.Subscribe {
		sub, err := hooks.NewSubscriber(sc, s.ingest, s.log, metrics)
		if err != nil {
			return fmt.Errorf("subscribe[%d]: %w", i, err)
		}
		s.lorawan.subscribers = append(s.lorawan.subscribers, sub)
	}
	return nil
}

// startLoRaWAN starts the registry watcher and the subscriptions; stop ends them and waits.
func (s *Site) startLoRaWAN() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.lorawan.registry.Run(ctx); err != nil {
			s.log.Error().Err(err).Str("component", "registry").Msg("registry not watched: changes need a restart")
		}
	})
	for _, sub := range s.lorawan.subscribers {
		wg.Go(func() { sub.Run(ctx) })
	}
	return func() {
		cancel()
		wg.Wait()
	}
}
