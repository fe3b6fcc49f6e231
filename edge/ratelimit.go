package edge

import (
	"time"

	"github.com/sluice-iot/sluice/hooks"
)

// newFloodLimits builds the per-device and per-connection flood limits into the ingest parts
// (docs/rate-limiting.md); none when off.
func (s *Site) newFloodLimits(parts *hooks.IngestParts) error {
	if !s.cfg.Limits.Enabled() {
		return nil
	}
	l, err := hooks.NewLimiter(s.cfg.Limits, time.Now, s.log, s.reg)
	if err != nil {
		return err
	}
	parts.Limiter = l
	return nil
}
