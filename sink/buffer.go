package sink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice"
)

// Buffer is the durable JetStream buffer between ingest and the sinks. Publish is safe for
// concurrent use; Open must return before Publish is called; Close releases everything.
type Buffer struct {
	cfg     BufferConfig
	dataDir string
	log     zerolog.Logger
	m       *bufferMetrics

	ns *server.Server // nil with an external server
	nc *nats.Conn
	js jetstream.JetStream

	floor       floors       // consumers whose unacknowledged messages are never reclaimed (budget.go)
	refused     refusal      // the last message refused for the budget (fill.go)
	group       *groupCommit // stores QoS 1/2 publishes in groups (group.go)
	gm          *groupMetrics
	fm          *fleetMetrics        // role edge (fleet.go)
	held        heldSites            // role worker: what the hub holds of each site (held.go)
	nudged      map[string]time.Time // role worker: when a site's source was last restarted (nudge.go)
	unreachable map[string]bool      // role worker: sites with a silent source that did not answer (nudge.go)
	closeOnce   sync.Once
}

// NewBuffer validates cfg and builds a Buffer; it performs no I/O.
func NewBuffer(cfg BufferConfig, dataDir string, log zerolog.Logger, reg prometheus.Registerer) (*Buffer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.StoreDir == "" {
		cfg.StoreDir = filepath.Join(dataDir, "jetstream")
	}
	b := &Buffer{
		cfg:     cfg,
		dataDir: dataDir,
		log:     log.With().Str("component", "buffer").Logger(),
		m:       newBufferMetrics(reg, cfg),
		gm:      newGroupMetrics(reg),
		fm:      newFleetMetrics(reg, cfg.Role),
	}
	if cfg.Role == RoleEdge {
		b.holdFloor(HubConsumer) // reclaim only what the hub holds
	}
	return b, nil
}

// Open starts the embedded server (or connects to the external one) and creates or updates
// the stream.
func (b *Buffer) Open(ctx context.Context) error {
	var opts []nats.Option
	opts = append(opts, nats.Name("sluice"), nats.MaxReconnects(-1))
	url := b.cfg.URL
	if url == "" {
		ns, err := b.startEmbedded()
		if err != nil {
			return err
		}
		b.ns = ns
		opts = append(opts, nats.InProcessServer(ns))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		b.Close()
		return fmt.Errorf("connect to nats: %w", err)
	}
	b.nc = nc
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(b.cfg.MaxAsyncPending),
		jetstream.WithPublishAsyncTimeout(b.cfg.PublishTimeout),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, msg *nats.Msg, err error) {
			b.m.asyncFailed.WithLabelValues(reason(err)).Inc()
			if isFull(err) {
				b.refused.note(msg)
			}
		}))
	if err != nil {
		b.Close()
		return fmt.Errorf("jetstream: %w", err)
	}
	b.js = js
	if err := b.ensureStream(ctx); err != nil {
		b.Close()
		return err
	}
	// One fsync per group with nats.fsync; without, group commit still costs less CPU than a
	// wait per publisher at the same latency (docs/benchmarks.md).
	var syncer *blockSyncer
	if b.cfg.Fsync && b.ns != nil {
		syncer = newBlockSyncer(b.cfg.StoreDir, b.cfg.Stream)
	}
	b.group = newGroupCommit(b.js, syncer, b.cfg.PublishTimeout, b.gm)
	return nil
}

func (b *Buffer) startEmbedded() (*server.Server, error) {
	opts := &server.Options{
		ServerName:         "sluice",
		JetStream:          true,
		StoreDir:           b.cfg.StoreDir,
		JetStreamMaxStore:  int64(b.cfg.MaxBytes)*2 + int64(b.cfg.DLQMaxBytes) + int64(b.cfg.MQTTStateMaxBytes),
		JetStreamMaxMemory: 64 << 20,
		NoSigs:             true,
		NoLog:              true,
		DontListen:         true,
		MaxPayload:         8 << 20,
	}
	// With fsync, Sluice syncs once per group of publishes (group.go) rather than the server
	// once per message (sync_always).
	if b.cfg.Listen != "" {
		host, port, err := net.SplitHostPort(b.cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats listen %q: %w", b.cfg.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("nats listen %q: bad port", b.cfg.Listen)
		}
		opts.DontListen, opts.Host, opts.Port = false, host, p
	}
	if err := b.fleetOptions(opts); err != nil { // fleet.go
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	ns.SetLoggerV2(natsLogger{b.log}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded nats: not ready after 30s")
	}
	b.log.Info().Str("store_dir", b.cfg.StoreDir).Str("listen", b.cfg.Listen).Msg("embedded nats started")
	return ns, nil
}

// StreamConfig is the configuration the buffer gives its stream.
func (b *Buffer) StreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        b.cfg.Stream,
		Description: "Sluice uplinks, decode failures and dead letters",
		Subjects:    []string{sluice.UplinkPrefix + ">", sluice.ErrorPrefix + ">"}, // dead letters: dlqstream.go
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     b.discardPolicy(),
		MaxBytes:    int64(b.cfg.MaxBytes),
		MaxAge:      b.cfg.MaxAge,
		Duplicates:  b.cfg.DuplicateWindow,
		Replicas:    b.replicas(),
	}
}

func (b *Buffer) ensureStream(ctx context.Context) error {
	if b.cfg.Role == RoleWorker {
		if err := b.ensureHubStream(ctx); err != nil { // fleet.go
			return err
		}
	} else if _, err := b.js.CreateOrUpdateStream(ctx, b.StreamConfig()); err != nil {
		return fmt.Errorf("create stream %s: %w", b.cfg.Stream, err)
	}
	if err := b.ensureDLQStream(ctx); err != nil {
		return err
	}
	return b.ensureFleet(ctx)
}

// Publish stores data on subject with msgID for de-duplication. With wait it returns once
// JetStream has stored the message (or failed to), and with nats.fsync once it is on disk:
// concurrent waiting publishes are stored (and synced) as one group (group.go). Without wait,
// it enqueues the message in the bounded asynchronous window and returns at once (failures
// are counted, not returned). A full stream yields sluice.ErrBufferFull.
func (b *Buffer) Publish(ctx context.Context, subject, msgID string, data []byte, wait bool) error {
	msg := &nats.Msg{Subject: subject, Data: data}
	b.stampSite(msg, msgID) // the id header, and an edge's site (fleet.go)
	start := time.Now()
	if wait {
		err := b.group.store(ctx, msg)
		if err == nil {
			b.m.publishSeconds.Observe(time.Since(start).Seconds())
			return nil
		}
		b.m.publishFailed.WithLabelValues(reason(err)).Inc()
		if isFull(err) {
			b.refused.note(msg)
			return fmt.Errorf("publish to %s: %w", subject, sluice.ErrBufferFull)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("publish to %s: no acknowledgement: %w", subject, err)
		}
		if errors.Is(err, jetstream.ErrAsyncPublishTimeout) { // sent, maybe stored: an unknown outcome
			return fmt.Errorf("publish to %s: no acknowledgement (%v): %w", subject, err, context.DeadlineExceeded)
		}
		return fmt.Errorf("publish to %s: %w", subject, err)
	}
	if _, err := b.js.PublishMsgAsync(msg); err != nil {
		b.m.publishFailed.WithLabelValues(reason(err)).Inc()
		return fmt.Errorf("publish to %s: %w", subject, err)
	}
	return nil
}

// isFull reports whether err is JetStream refusing a message for the stream's limits
// (nats-server's JSStreamStoreFailedF with "maximum bytes exceeded" and its kin).
func isFull(err error) bool {
	s := err.Error()
	return strings.Contains(s, "maximum bytes exceeded") || strings.Contains(s, "maximum messages exceeded") ||
		strings.Contains(s, "insufficient resources")
}

func reason(err error) string {
	switch {
	case isFull(err):
		return "full"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout), errors.Is(err, jetstream.ErrAsyncPublishTimeout):
		return "timeout"
	case errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		return "window_full"
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining):
		return "closed"
	default:
		return "other"
	}
}

// JetStream returns the JetStream context for consumers; valid after Open.
func (b *Buffer) JetStream() jetstream.JetStream { return b.js }

// Stream returns the stream's name.
func (b *Buffer) Stream() string { return b.cfg.Stream }

// Check reports whether the buffer can take writes: the connection is up and the stream is
// below its budget (sluice.ErrBufferFull when it refuses writes, see fillError); an error
// wrapping ErrNearFull means it still takes them, with 10 % of its budget or less left.
func (b *Buffer) Check(ctx context.Context) error {
	if b.nc == nil || !b.nc.IsConnected() {
		return errors.New("not connected to nats")
	}
	s, err := b.js.Stream(ctx, b.cfg.Stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", b.cfg.Stream, err)
	}
	info := s.CachedInfo()
	if info != nil && info.Config.MaxBytes > 0 {
		b.m.usedBytes.Set(float64(info.State.Bytes))
		return b.fillError(info.State.Bytes, info.Config.MaxBytes)
	}
	return nil
}

// Close flushes pending asynchronous publishes (bounded by the publish timeout), closes the
// connection and shuts the embedded server down. It is idempotent.
func (b *Buffer) Close() error {
	b.closeOnce.Do(func() {
		if b.group != nil {
			b.group.close()
			if b.group.sync != nil {
				b.group.sync.close()
			}
		}
		if b.js != nil {
			select {
			case <-b.js.PublishAsyncComplete():
			case <-time.After(b.cfg.PublishTimeout):
				b.log.Warn().Int("pending", b.js.PublishAsyncPending()).Msg("closing with asynchronous publishes unacknowledged")
			}
		}
		if b.nc != nil {
			b.nc.Close()
		}
		if b.ns != nil {
			b.ns.Shutdown()
			b.ns.WaitForShutdown()
		}
	})
	return nil
}

// natsLogger bridges the embedded server's logs into zerolog.
type natsLogger struct{ log zerolog.Logger }

func (l natsLogger) Noticef(format string, v ...any) { l.log.Debug().Msgf(format, v...) }
func (l natsLogger) Warnf(format string, v ...any)   { l.log.Warn().Msgf(format, v...) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l natsLogger) Errorf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l natsLogger) Debugf(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }
func (l natsLogger) Tracef(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }
