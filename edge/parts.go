package edge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
)

// part is one long-lived piece of a running site. Run starts the parts in dependency order
// and stops them in reverse; every function is optional.
type part struct {
	name string // in debug logs
	// start brings the part up (opens, binds, restores) and returns once it serves; an error
	// stops the site from starting.
	start func(ctx context.Context) error
	// run serves until its ctx ends; an error stops the whole site and is returned by Run.
	run func(ctx context.Context) error
	// stop ends what start began, after run has returned. It is called only for a part whose
	// start succeeded.
	stop func() error
}

// runParts starts parts in order, runs them under one errgroup until ctx ends or a part fails,
// then stops them in reverse order: each part's run is cancelled and waited for, then its stop
// is called, so intake (last in parts) stops first. A start that fails stops the parts already
// started. Once stopping begins, the parts still running get timeout before their contexts
// are cancelled all at once (their work is redelivered on restart). It returns every part's
// error.
func runParts(ctx context.Context, log zerolog.Logger, timeout time.Duration, parts []part) error {
	g, failed := errgroup.WithContext(ctx) // failed ends with ctx or with the first failed run
	var (
		mu   sync.Mutex
		errs []error
	)
	record := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	type running struct {
		part   part
		cancel context.CancelFunc
		done   chan struct{}
	}
	var started []running
	startErr := false
	for _, p := range parts {
		if p.start != nil {
			if err := p.start(ctx); err != nil {
				record(err)
				startErr = true
				break
			}
		}
		// A part's context outlives ctx: the part is cancelled in its turn when stopping.
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		r := running{part: p, cancel: cancel, done: make(chan struct{})}
		if p.run != nil {
			g.Go(func() error {
				defer close(r.done)
				if err := p.run(pctx); err != nil {
					record(err)
					return err
				}
				return nil
			})
		} else {
			close(r.done)
		}
		started = append(started, r)
		log.Debug().Str("part", p.name).Msg("started")
	}
	if !startErr {
		log.Info().Msg("sluice started")
		<-failed.Done()
		log.Info().Msg("stopping: intake first")
	}
	deadline := time.AfterFunc(timeout, func() {
		log.Warn().Dur("shutdown_timeout", timeout).Msg("shutdown timeout: abandoning unfinished batches (they are redelivered on restart)")
		for _, r := range started {
			r.cancel()
		}
	})
	defer deadline.Stop()
	for i := len(started) - 1; i >= 0; i-- {
		r := started[i]
		r.cancel()
		<-r.done
		if r.part.stop != nil {
			if err := r.part.stop(); err != nil {
				record(err)
			}
		}
		log.Debug().Str("part", r.part.name).Msg("stopped")
	}
	g.Wait() // every run has returned; their errors are recorded
	return errors.Join(errs...)
}

// adminPart serves /healthz, /readyz, /metrics and /status on http.address (none when empty).
func (s *Site) adminPart() part {
	var (
		ln  net.Listener
		srv *http.Server
	)
	return part{
		name: "admin",
		start: func(context.Context) error {
			if s.cfg.HTTP.Address == "" {
				return nil
			}
			var err error
			if ln, err = net.Listen("tcp", s.cfg.HTTP.Address); err != nil {
				return fmt.Errorf("http.address: %w", err)
			}
			srv = &http.Server{Handler: s.adminHandler(s.reg), ReadHeaderTimeout: 5 * time.Second}
			s.httpAddr <- ln.Addr().String()
			s.log.Info().Str("address", ln.Addr().String()).Msg("admin listening")
			return nil
		},
		run: func(ctx context.Context) error {
			if srv == nil {
				return nil
			}
			shutdown := make(chan struct{})
			context.AfterFunc(ctx, func() {
				defer close(shutdown)
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
				defer cancel()
				srv.Shutdown(sctx)
			})
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("admin: %w", err)
			}
			<-shutdown
			return nil
		},
	}
}
