package edge

import (
	"context"
	"fmt"

	"github.com/sluice-iot/sluice/hooks"
	"github.com/sluice-iot/sluice/registry"
)

// The registry serves the ingest hook's LoRaWAN routes.
var _ hooks.Devices = (*registry.Registry)(nil)

// newLoRaWAN builds what the ingest hook needs for LoRaWAN network servers into its parts:
// the device registry (reloaded while the site runs) and the de-duplication window. The
// registry file is read here, so its problems stop the start.
func (s *Site) newLoRaWAN(parts *hooks.IngestParts) error {
	reg, err := registry.New(s.cfg.Registry, s.decoders, s.log, s.reg)
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
	s.registry = reg
	return nil
}

// registryPart reloads the device registry when its file changes (when registry.watch is on).
// A watch that cannot start is logged: the site runs on, and changes need a restart.
func (s *Site) registryPart() part {
	return part{
		name: "registry",
		run: func(ctx context.Context) error {
			if err := s.registry.Run(ctx); err != nil {
				s.log.Error().Err(err).Str("component", "registry").Msg("registry not watched: changes need a restart")
			}
			return nil
		},
	}
}
