package bench

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/sluice-iot/sluice/internal/tcpproxy"
)

// system is what one run loads: a Sluice (started by the benchmark or already running) or the
// peer stack. Its processes' CPU time and peak RSS are the system's cost; PostgreSQL's is
// measured apart.
type system struct {
	name   string // for people: "Sluice", "Telegraf + Mosquitto"
	broker string // MQTT host:port
	procs  []proc
	child  bool // started by the benchmark
	// admin is Sluice's admin listener (committed rows from its metrics), "" when unknown.
	admin string
	// polled says the watcher must poll for committed rows; the peer reports them itself.
	polled bool
	// probes says the probe rows can be watched for end-to-end latency (Sluice's tables).
	probes bool
	proxy  *tcpproxy.Proxy // between a started Sluice and the database, for --outage
	count  func(ctx context.Context) (int64, error)
	stop   func() error
}

// proc is one process of the system under test.
type proc struct {
	name string
	pid  int
}

// runSeq tells the schemas of one benchmark process's runs apart.
var runSeq atomic.Int64

// freshSchema names a schema for one run.
func freshSchema() string {
	return fmt.Sprintf("bench_%d_%d_%d", os.Getpid(), time.Now().Unix(), runSeq.Add(1))
}

// startSystem starts (or finds) the system cfg describes. Its stop drops a schema it created
// unless cfg.Keep.
func startSystem(ctx context.Context, cfg Config, schema string, w *watcher) (*system, error) {
	if cfg.Peer == PeerTelegraf {
		p, err := startPeer(ctx, cfg, schema, w)
		if err != nil {
			dropSchema(cfg.DatabaseURL, schema)
			return nil, err
		}
		return &system{name: "Telegraf + Mosquitto", broker: p.broker, procs: p.procs(), child: true,
			count: func(ctx context.Context) (int64, error) { return p.count(ctx, w) },
			stop: func() error {
				err := p.stop()
				if !cfg.Keep {
					dropSchema(cfg.DatabaseURL, schema)
				}
				return err
			}}, nil
	}
	s := &system{name: "Sluice", polled: true, probes: !cfg.NoProbes, count: w.count}
	if cfg.Broker != "" {
		s.broker, s.admin, s.stop = cfg.Broker, cfg.Admin, func() error { return nil }
		if cfg.PID > 0 {
			s.procs = []proc{{"sluice", cfg.PID}}
		}
		return s, nil
	}
	sinkURL := cfg.DatabaseURL
	if cfg.Outage > 0 {
		u, _ := url.Parse(cfg.DatabaseURL)
		var err error
		if s.proxy, err = tcpproxy.New(u.Host); err != nil {
			return nil, fmt.Errorf("database proxy: %w", err)
		}
		u.Host = s.proxy.Addr
		sinkURL = u.String()
	}
	templates := ""
	if cfg.Payload == PayloadChirpStack {
		templates = cfg.Templates
	}
	c, err := startChild(ctx, cfg.Sluice, sinkURL, schema, cfg.Fsync, templates, cfg.Profile)
	if err != nil {
		if s.proxy != nil {
			s.proxy.Close()
		}
		dropSchema(cfg.DatabaseURL, schema)
		return nil, err
	}
	s.broker, s.admin, s.child = c.mqttAddr, c.httpAddr, true
	s.procs = []proc{{"sluice", c.pid()}}
	s.stop = func() error {
		err := c.stop()
		if s.proxy != nil {
			s.proxy.Close()
		}
		if !cfg.Keep {
			dropSchema(cfg.DatabaseURL, schema)
		}
		return err
	}
	return s, nil
}
