// Package sitetest starts a real Sluice site in-process for tests: the embedded broker on a
// free loopback port, embedded JetStream in t.TempDir(), and the sink writing to a schema of
// its own in the test PostgreSQL.
package sitetest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/hooks"
	"github.com/sluice-iot/sluice/internal/pgtest"
)

// Site is a running test site.
type Site struct {
	*edge.Site
	Config   edge.Config
	MQTTAddr string // host:port of the first MQTT listener
	HTTPAddr string // host:port of the admin listener
	Schema   string // the PostgreSQL schema the sink writes to
	stop     context.CancelFunc
	done     chan error
}

// Config returns a test configuration: the quick-start route (sensors/{device}/up, json,
// tenant "default"), free ports, a data dir in t.TempDir() and a fresh schema.
func Config(t testing.TB) edge.Config {
	cfg := edge.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Address = "127.0.0.1:0"
	cfg.MQTT.Listeners[0].Address = "127.0.0.1:0"
	cfg.Routes = nil
	cfg.Routes = append(cfg.Routes, edgeRoute("sensors/{device}/up", "json", "default"))
	cfg.Sink.Targets[0].DatabaseURL = pgtest.URL()
	cfg.Sink.Targets[0].Schema = pgtest.Schema(t)
	cfg.Sink.Targets[0].BatchWait = 20 * time.Millisecond
	cfg.ShutdownTimeout = 10 * time.Second
	return cfg
}

// Start runs a site built from cfg (see Config) until the test ends.
func Start(t testing.TB, cfg edge.Config) *Site {
	t.Helper()
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	if testing.Verbose() {
		log = log.Level(zerolog.InfoLevel)
	}
	es, err := edge.New(cfg, log)
	if err != nil {
		t.Fatalf("edge.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Site{Site: es, Config: cfg, Schema: cfg.Sink.Targets[0].Schema, stop: cancel, done: make(chan error, 1)}
	go func() { s.done <- es.Run(ctx) }()
	wait, cancelWait := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelWait()
	addrs, err := es.MQTTAddrs(wait)
	if err != nil {
		cancel()
		t.Fatalf("site did not start: %v (run error: %v)", err, <-s.done)
	}
	s.MQTTAddr = addrs[0]
	if cfg.HTTP.Address != "" {
		if s.HTTPAddr, err = es.HTTPAddr(wait); err != nil {
			t.Fatalf("admin listener did not start: %v", err)
		}
	}
	t.Cleanup(func() { s.Stop(t) })
	// Wait until every sink has migrated its schema and consumes. (A site on TimescaleDB may be
	// degraded by failing jobs at once: the sinks' states decide.)
	for {
		r := es.Ready(wait)
		if r.Status == "ready" || r.Status == "degraded" && len(r.Jobs) > 0 && sinksOK(r) {
			break
		}
		if wait.Err() != nil {
			t.Fatalf("site not ready after 30s: %+v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

// Stop stops the site gracefully and fails t if it did not stop cleanly. It is idempotent.
func (s *Site) Stop(t testing.TB) {
	t.Helper()
	if s.stop == nil {
		return
	}
	s.stop()
	s.stop = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("site stopped with error: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Errorf("site did not stop within 60s")
	}
}

// WaitRows polls until query (a count in the site's schema) reaches want or timeout passes,
// and returns the last count.
func (s *Site) WaitRows(t testing.TB, query string, want int64, timeout time.Duration) int64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := pgtest.Count(t, s.Schema, query)
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func sinksOK(r edge.Readiness) bool {
	for _, state := range r.Sinks {
		if state != "ok" {
			return false
		}
	}
	return true
}

func edgeRoute(topic, decoder, tenant string) hooks.RouteConfig {
	return hooks.RouteConfig{Topic: topic, Decoder: decoder, Tenant: tenant}
}
