// Package edge is the composition root of one Sluice site: it builds every part from the
// configuration in dependency order, runs them, and stops them in reverse. It is the only
// package that connects siblings and starts long-lived goroutines.
package edge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice/bridge"
	"github.com/sluice-iot/sluice/broker"
	"github.com/sluice-iot/sluice/decoders"
	"github.com/sluice-iot/sluice/hooks"
	"github.com/sluice-iot/sluice/registry"
	"github.com/sluice-iot/sluice/sink"
)

// The buffer satisfies the ingest hook's needs: it stores uplinks and reads them back.
var (
	_ hooks.Publisher     = (*sink.Buffer)(nil)
	_ hooks.StoredUplinks = (*sink.Buffer)(nil)
)

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
	registry *registry.Registry   // devices of the LoRaWAN routes (lorawan.go)
	bridges  []*bridge.Subscriber // subscriptions to other brokers (bridge.go)
	brokerUp atomic.Bool

	mqttAddrs chan []string // receives the bound listener addresses once the broker serves
	httpAddr  chan string
}

// New builds a site from a validated configuration without opening any socket or file
// (besides reading the decoders' scripts and the registry). What it built is released when it
// fails, and by Run when Run returns.
func New(cfg Config, log zerolog.Logger) (_ *Site, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Site{
		cfg: cfg, log: log, reg: prometheus.NewRegistry(),
		mqttAddrs: make(chan []string, 1), httpAddr: make(chan string, 1),
	}
	defer func() {
		if err != nil {
			s.release()
		}
	}()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if s.buffer, err = sink.NewBuffer(cfg.NATS, cfg.DataDir, log, s.reg); err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	for i, tc := range cfg.sinkTargets() { // none in role edge
		t, err := sink.NewTarget(tc, s.buffer, log, s.reg)
		if err != nil {
			return nil, fmt.Errorf("sink.targets[%d]: %w", i, err)
		}
		s.targets = append(s.targets, t)
	}
	if cfg.Role == sink.RoleWorker { // no broker, no intake (fleet.go)
		return s, nil
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
	parts := hooks.IngestParts{Router: router, Decoders: s.decoders, Publisher: s.buffer, Log: log, Metrics: s.reg}
	if err := s.newFloodLimits(&parts); err != nil { // ratelimit.go
		return nil, err
	}
	if err := s.newStoreOnChange(&parts); err != nil { // storeonchange.go
		return nil, err
	}
	if err := s.newLoRaWAN(&parts); err != nil { // lorawan.go
		return nil, err
	}
	if s.ingest, err = hooks.NewIngest(parts); err != nil {
		return nil, err
	}
	if err := s.newBridges(); err != nil { // bridge.go
		return nil, err
	}
	if s.broker, err = broker.New(cfg.MQTT, log, s.reg); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	if err := s.broker.AddHook(s.ingest, nil); err != nil {
		return nil, err
	}
	if err := s.persistMQTT(); err != nil { // mqttstate.go
		return nil, err
	}
	return s, nil
}

// release frees what New built and Run does not stop: the broker (when it never started),
// the targets' connection pools, the decoders. It is idempotent.
func (s *Site) release() error {
	var errs []error
	if s.broker != nil {
		s.broker.Close() // a started broker was closed, and its error reported, by its part
	}
	for _, t := range slices.Backward(s.targets) {
		errs = append(errs, t.Close())
	}
	if s.decoders != nil {
		errs = append(errs, s.decoders.Close())
	}
	return errors.Join(errs...)
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

// Run starts the site and blocks until ctx is cancelled or a part fails for good, then stops
// it: intake first (the subscriptions and the broker, so in-flight publishes finish and no new
// ones arrive), then the sinks (each finishes its batch), then the buffer; all within the
// shutdown timeout. It returns every part's error. Call it once.
func (s *Site) Run(ctx context.Context) (err error) {
	defer func() { err = errors.Join(err, s.release()) }()
	ml := applyMemoryLimit(s.cfg.MemoryLimit, os.Getenv) // memory.go
	s.log.Info().Int64("memory_limit_bytes", ml.bytes).Str("memory_limit_from", ml.source).Msg("go memory limit")
	if err := os.MkdirAll(s.cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	err = runParts(ctx, s.log, s.cfg.ShutdownTimeout, s.parts())
	s.log.Info().Msg("sluice stopped")
	return err
}

// parts are the site's parts in dependency order: each needs only those before it, and the
// intake comes last, so that it starts last and stops first.
func (s *Site) parts() []part {
	if s.cfg.Role == sink.RoleWorker {
		return s.workerParts() // fleet.go
	}
	parts := []part{
		s.bufferPart(),
		s.decodersPart(),
		s.storeOnChangePart(), // restores its state before intake; saves it after
		s.adminPart(),         // parts.go
		s.hubPart(),           // fleet.go: role edge only
	}
	for _, t := range s.targets {
		parts = append(parts, s.targetPart(t), jobsPart(t))
	}
	parts = append(parts, s.registryPart(), s.brokerPart())
	for _, b := range s.bridges {
		parts = append(parts, bridgePart(b))
	}
	return parts
}

// bufferPart opens the JetStream buffer and closes it, last.
func (s *Site) bufferPart() part {
	return part{
		name:  "buffer",
		start: s.buffer.Open,
		stop:  s.buffer.Close,
	}
}

// decodersPart reloads scripts and templates when they change (when decoders.watch is on).
// A watch that cannot start is logged: the site runs on, and changes need a restart.
func (s *Site) decodersPart() part {
	return part{
		name: "decoders",
		run: func(ctx context.Context) error {
			if err := s.decoders.Run(ctx); err != nil {
				s.log.Error().Err(err).Str("component", "decoders").Msg("decoders not watched: changes need a restart")
			}
			return nil
		},
	}
}

// targetPart writes the buffer to one database. A target that fails for good stops the site.
func (s *Site) targetPart(t *sink.Target) part {
	return part{
		name: "sink " + t.Name(),
		run: func(ctx context.Context) error {
			if err := t.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		},
	}
}

// jobsPart watches a target's TimescaleDB jobs (nothing on plain PostgreSQL).
func jobsPart(t *sink.Target) part {
	return part{
		name: "jobs " + t.Name(),
		run:  func(ctx context.Context) error { t.WatchJobs(ctx); return nil },
	}
}

// brokerPart serves MQTT; stopping it closes the listeners after the publishes in flight.
func (s *Site) brokerPart() part {
	return part{
		name: "broker",
		start: func(context.Context) error {
			if err := s.broker.Start(); err != nil {
				return err
			}
			s.brokerUp.Store(true)
			s.mqttAddrs <- s.broker.Addrs()
			return nil
		},
		stop: func() error {
			s.brokerUp.Store(false)
			return s.broker.Close()
		},
	}
}
