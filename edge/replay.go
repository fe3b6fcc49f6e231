package edge

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice/decoders"
	"github.com/sluice-iot/sluice/sink"
)

// Replay is what `sluice replay` needs of a site: its buffer, one of its targets and, to decode
// stored failures again, its decoders as now on disk. Close releases them.
type Replay struct {
	Buffer   *sink.Buffer
	Target   *sink.Target
	Decoders *decoders.Set // nil unless asked for
}

// NewReplay builds the buffer of cfg.NATS (the caller points it at a running site's server),
// the target named target and, with withDecoders, the decoders, as New does for a site and
// without opening anything; Open opens the buffer. What it built is released when it fails.
func NewReplay(cfg Config, target string, withDecoders bool, log zerolog.Logger) (_ *Replay, err error) {
	var tc *sink.TargetConfig
	for i := range cfg.Sink.Targets {
		if cfg.Sink.Targets[i].Name == target {
			tc = &cfg.Sink.Targets[i]
		}
	}
	if tc == nil {
		return nil, fmt.Errorf("no target %q", target)
	}
	r := &Replay{}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	reg := prometheus.NewRegistry()
	if r.Buffer, err = sink.NewBuffer(cfg.NATS, cfg.DataDir, log, reg); err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	if r.Target, err = sink.NewTarget(*tc, r.Buffer, log, reg); err != nil {
		return nil, err
	}
	if withDecoders {
		if r.Decoders, err = decoders.Open(cfg.Decoders, log, nil); err != nil {
			return nil, fmt.Errorf("decoders: %w", err)
		}
	}
	return r, nil
}

// Open opens the buffer.
func (r *Replay) Open(ctx context.Context) error { return r.Buffer.Open(ctx) }

// Close releases the decoders, the target and the buffer. It is idempotent.
func (r *Replay) Close() error {
	var errs []error
	if r.Decoders != nil {
		errs = append(errs, r.Decoders.Close())
	}
	if r.Target != nil {
		errs = append(errs, r.Target.Close())
	}
	if r.Buffer != nil {
		errs = append(errs, r.Buffer.Close())
	}
	return errors.Join(errs...)
}
