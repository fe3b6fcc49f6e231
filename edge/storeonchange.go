package edge

import (
	"context"
	"path/filepath"

	"github.com/sluice-iot/sluice/hooks"
)

// newStoreOnChange builds store-on-change into the ingest parts (docs/rate-limiting.md); none
// when off. Its state is restored and saved by its part.
func (s *Site) newStoreOnChange(parts *hooks.IngestParts) error {
	if !s.cfg.StoreOnChange.Enabled() {
		return nil
	}
	f, err := hooks.NewFilter(s.cfg.StoreOnChange, s.reg)
	if err != nil {
		return err
	}
	parts.Filter = f
	s.filter = f
	return nil
}

// storeOnChangePart restores the store-on-change state before intake starts: the snapshot in
// the data dir, then every uplink the buffer stored after it (after a crash, the ones the
// snapshot missed). It saves the state at once, then every snapshot_interval while it runs,
// and once more when it stops, after intake has stopped. A snapshot that cannot be read,
// replayed or saved is logged and ingest goes on: the cost is extra kept readings, never a
// lost one.
func (s *Site) storeOnChangePart() part {
	if s.filter == nil {
		return part{name: "store-on-change"}
	}
	log := s.log.With().Str("component", "filter").Logger()
	path := filepath.Join(s.cfg.DataDir, hooks.StateFile)
	return part{
		name: "store-on-change",
		start: func(ctx context.Context) error {
			savedAt, n, err := s.filter.LoadState(path)
			switch {
			case err != nil:
				log.Warn().Err(err).Msg("store-on-change state not loaded: the first reading of every series will be kept")
			case !savedAt.IsZero():
				replayed, err := s.filter.Replay(ctx, s.buffer, savedAt)
				if err != nil {
					log.Warn().Err(err).Msg("store-on-change state not brought past its snapshot: some changes may be judged against older values")
				}
				log.Info().Int("series", n).Time("saved_at", savedAt).Int("replayed_uplinks", replayed).Msg("store-on-change state restored")
			}
			// A snapshot now, before intake, so that a crash before the first periodic one still
			// finds one to replay the buffer from.
			if err := s.filter.SaveState(path); err != nil {
				log.Warn().Err(err).Msg("store-on-change snapshot failed")
			}
			return nil
		},
		run: func(ctx context.Context) error {
			s.filter.RunSnapshots(ctx, path, s.cfg.StoreOnChange.SnapshotInterval, func(err error) {
				log.Warn().Err(err).Msg("store-on-change snapshot failed")
			})
			return nil
		},
		stop: func() error {
			if err := s.filter.SaveState(path); err != nil {
				log.Error().Err(err).Msg("store-on-change state not saved at shutdown: the buffer is replayed at the next start")
			}
			return nil
		},
	}
}
