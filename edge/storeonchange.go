package edge

import (
	"context"
	"path/filepath"
	"sync"

	"github.com/sluice-iot/sluice/hooks"
)

// newStoreOnChange builds store-on-change into the ingest parts (docs/rate-limiting.md); none
// when off. Its state is restored and saved by startFilterState.
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

// startFilterState restores the store-on-change state before intake starts: the snapshot in
// the data dir, then every uplink the buffer stored after it (after a crash, the ones the
// snapshot missed). It saves the state at once, then every snapshot_interval until the
// returned stop is called, which saves it once more; call stop after intake has stopped. A snapshot that
// cannot be read or replayed is logged and ingest starts anyway: the cost is extra kept
// readings, never a lost one.
func (s *Site) startFilterState(ctx context.Context) (stop func()) {
	if s.filter == nil {
		return func() {}
	}
	log := s.log.With().Str("component", "filter").Logger()
	path := filepath.Join(s.cfg.DataDir, hooks.StateFile)
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
	// A snapshot now, before intake, so that a crash before the first periodic one still finds
	// one to replay the buffer from.
	if err := s.filter.SaveState(path); err != nil {
		log.Warn().Err(err).Msg("store-on-change snapshot failed")
	}
	snapCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() {
		s.filter.RunSnapshots(snapCtx, path, s.cfg.StoreOnChange.SnapshotInterval, func(err error) {
			log.Warn().Err(err).Msg("store-on-change snapshot failed")
		})
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			if err := s.filter.SaveState(path); err != nil {
				log.Error().Err(err).Msg("store-on-change state not saved at shutdown: the buffer is replayed at the next start")
			}
		})
	}
}
