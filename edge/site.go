// Package edge is the composition root of one Sluice site: it builds every part from the
// configuration in dependency order, runs them, and stops them in reverse. It is the only
// package that connects siblings and starts long-lived goroutines.
package edge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-iot/sluice/broker"
	"github.com/sluice-iot/sluice/decoders"
	"github.com/sluice-iot/sluice/hooks"
	"github.com/sluice-iot/sluice/sink"
)

// The buffer satisfies the ingest hook's need.
var _ hooks.Publisher = (*sink.Buffer)(nil)

// Site is one running edge: broker → ingest hook → JetStream buffer → sink targets.
type Site struct {
	cfg      Config
	log      zerolog.Logger
	reg      *prometheus.Registry
	buffer   *sink.Buffer
	decoders *decoders.Set
	targets  []*sink.Target
	broker   *broker.Broker
	ingest   *hooks.Ingest
	filter   *hooks.Filter
	lorawan  lorawan // registry, de-duplication, subscriptions (lorawan.go)
	brokerUp atomic.Bool

	mqttAddrs chan []string // receives the bound listener addresses once the broker serves
	httpAddr  chan string
}

// New builds a site from a validated configuration without opening any socket or file.
func New(cfg Config, log zerolog.Logger) (*Site, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Site{
		cfg: cfg, log: log, reg: prometheus.NewRegistry(),
		mqttAddrs: make(chan []string, 1), httpAddr: make(chan string, 1),
	}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var err error
	if s.buffer, err = sink.NewBuffer(cfg.NATS, cfg.DataDir, log, s.reg); err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	for i, tc := range cfg.Sink.Targets {
		t, err := sink.NewTarget(tc, s.buffer, log, s.reg)
		if err != nil {
			return nil, fmt.Errorf("sink.targets[%d]: %w", i, err)
		}
		s.targets = append(s.targets, t)
	}
	router, err := hooks.NewRouter(cfg.Routes)
	if err != nil {
		return nil, err
	}
	// The decoders' scripts and templates are read here, so a script that does not compile
	// stops the start with its file and line:column.
	if s.decoders, err = decoders.Open(cfg.Decoders, log, s.reg); err != nil {
		return nil, fmt.Errorf("decoders: %w", err)
	}
	if s.ingest, err = hooks.NewIngest(router, s.decoders, s.buffer, log, s.reg); err != nil {
		s.decoders.Close()
		return nil, err
	}
	if err := s.newRateLimits(); err != nil { // flood limits and store-on-change (ratelimit.go)
		return nil, err
	}
	if err := s.newLoRaWAN(); err != nil {
		return nil, err
	}
	if s.broker, err = broker.New(cfg.MQTT, log, s.reg); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	if err := s.broker.AddHook(s.ingest, nil); err != nil {
		return nil, err
	}
	return s, nil
}

// Registry returns the site's metrics registry.
func (s *Site) Registry() *prometheus.Registry { return s.reg }

// MQTTAddrs blocks until the broker listens and returns its bound addresses.
func (s *Site) MQTTAddrs(ctx context.Context) ([]string, error) {
	select {
	case a := <-s.mqttAddrs:
		s.mqttAddrs <- a
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// HTTPAddr blocks until the admin listener listens and returns its bound address.
func (s *Site) HTTPAddr(ctx context.Context) (string, error) {
	select {
	case a := <-s.httpAddr:
		s.httpAddr <- a
		return a, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Run starts the site and blocks until ctx is cancelled, then stops it: intake first (the
// broker, so in-flight publishes finish and no new ones arrive), then the sinks (each finishes
// its batch), then the buffer; all within the shutdown timeout.
func (s *Site) Run(ctx context.Context) error {
	if s.cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(int64(s.cfg.MemoryLimit))
	}
	if err := os.MkdirAll(s.cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	if err := s.buffer.Open(ctx); err != nil {
		return err
	}
	defer s.buffer.Close()
	defer s.decoders.Close()
	decodersCtx, stopDecoders := context.WithCancel(ctx)
	decodersDone := make(chan struct{})
	go func() { // hot reload of scripts and templates (when decoders.watch is on)
		defer close(decodersDone)
		if err := s.decoders.Run(decodersCtx); err != nil {
			s.log.Error().Err(err).Str("component", "decoders").Msg("decoders not watched: changes need a restart")
		}
	}()
	defer func() { stopDecoders(); <-decodersDone }()
	stopFilterState := s.startFilterState(ctx) // restore store-on-change state before intake
	defer stopFilterState()                    // the last snapshot, once the broker has closed
	defer func() {
		for _, t := range s.targets {
			t.Close()
		}
	}()

	sinkCtx, stopSinks := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSinks()
	sinks, _ := errgroup.WithContext(sinkCtx)
	for _, t := range s.targets {
		sinks.Go(func() error { return t.Run(sinkCtx) })
		sinks.Go(func() error { t.WatchJobs(sinkCtx); return nil }) // TimescaleDB job health
	}

	var admin *http.Server
	if s.cfg.HTTP.Address != "" {
		ln, err := net.Listen("tcp", s.cfg.HTTP.Address)
		if err != nil {
			stopSinks()
			sinks.Wait()
			return fmt.Errorf("http.address: %w", err)
		}
		admin = &http.Server{Handler: s.adminHandler(s.reg), ReadHeaderTimeout: 5 * time.Second}
		go admin.Serve(ln)
		s.httpAddr <- ln.Addr().String()
		s.log.Info().Str("address", ln.Addr().String()).Msg("admin listening")
	}

	if err := s.broker.Start(); err != nil {
		stopSinks()
		sinks.Wait()
		return err
	}
	s.brokerUp.Store(true)
	s.mqttAddrs <- s.broker.Addrs()
	stopLoRaWAN := s.startLoRaWAN()
	s.log.Info().Msg("sluice started")

	sinkDone := make(chan error, 1)
	go func() { sinkDone <- sinks.Wait() }()
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-sinkDone: // a sink failed for good
		sinkDone <- runErr
	}

	s.log.Info().Msg("stopping: intake first")
	deadline := time.AfterFunc(s.cfg.ShutdownTimeout, func() {
		s.log.Warn().Dur("shutdown_timeout", s.cfg.ShutdownTimeout).Msg("shutdown timeout: abandoning unfinished batches (they are redelivered on restart)")
		stopSinks()
	})
	defer deadline.Stop()
	s.brokerUp.Store(false)
	stopLoRaWAN() // subscriptions are intake too
	if err := s.broker.Close(); err != nil {
		runErr = errors.Join(runErr, err)
	}
	stopSinks()
	if err := <-sinkDone; err != nil && !errors.Is(err, context.Canceled) {
		runErr = errors.Join(runErr, err)
	}
	if admin != nil {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		admin.Shutdown(shutdownCtx)
		cancel()
	}
	s.log.Info().Msg("sluice stopped")
	return runErr
}
