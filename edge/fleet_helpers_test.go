package edge_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/internal/sitetest"
	"github.com/sluice-iot/sluice/internal/tcpproxy"
	"github.com/sluice-iot/sluice/sink"
)

// testHub is a hub NATS server with JetStream in domain "hub", started in-process from a
// configuration shaped as deploy/fleet/hub.conf: the workers' user, and one user per site for
// its leafnode link, allowed to publish only its own delivery subject and replies. It does
// not advertise its leafnode address, so that an edge reaches it only through its proxy.
type testHub struct {
	ns        *server.Server
	ClientURL string
	LeafAddr  string
	js        jetstream.JetStream
}

const (
	hubPassword    = "site-secret"
	workerPassword = "worker-secret"
)

// hubSiteUser is the leafnode user of one site, as in deploy/fleet/hub.conf.
func hubSiteUser(site string) string {
	return fmt.Sprintf(`{user: %[1]s, password: %[2]s, permissions: {
        publish: {allow: ["sluice.fleet.%[1]s.>", "$JSC.R.>", "_INBOX.>"]},
        subscribe: {allow: ["$JS.%[1]s.API.>", "$JS.FC.>", "_INBOX.>"]}}}`, site, hubPassword)
}

func startHub(t testing.TB, sites ...string) *testHub {
	t.Helper()
	var users []string
	for _, s := range sites {
		users = append(users, hubSiteUser(s))
	}
	dir := t.TempDir()
	conf := fmt.Sprintf(`
server_name: hub-test
listen: 127.0.0.1:-1
jetstream {store_dir: %q, domain: hub}
leafnodes {listen: 127.0.0.1:-1, no_advertise: true}
authorization {users: [
    {user: worker, password: %s},
    %s
]}
`, filepath.Join(dir, "js"), workerPassword, strings.Join(users, ",\n    "))
	path := filepath.Join(dir, "hub.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("hub.conf: %v", err)
	}
	opts.NoSigs, opts.NoLog = true, true
	if f := os.Getenv("SLUICE_FLEET_HUB_LOG"); f != "" {
		opts.NoLog, opts.LogFile, opts.Debug = false, f, true
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	if !opts.NoLog {
		ns.ConfigureLogger()
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("hub not ready")
	}
	nc, err := nats.Connect(ns.ClientURL(), nats.UserInfo("worker", workerPassword))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	url := strings.Replace(ns.ClientURL(), "nats://", "nats://worker:"+workerPassword+"@", 1)
	return &testHub{ns: ns, ClientURL: url, LeafAddr: fmt.Sprintf("127.0.0.1:%d", opts.LeafNode.Port), js: js}
}

// edgeConfig is an in-process edge site whose leafnode link runs through a cuttable proxy.
func edgeConfig(t testing.TB, h *testHub, site string) (edge.Config, *tcpproxy.Proxy) {
	proxy := tcpproxy.Start(t, h.LeafAddr)
	cfg := sitetest.Config(t)
	cfg.Role = sink.RoleEdge
	cfg.NATS.Site = site
	cfg.NATS.Hub.URLs = []string{"nats-leaf://" + proxy.Addr}
	cfg.NATS.Hub.User, cfg.NATS.Hub.Password = site, hubPassword
	return cfg, proxy
}

// workerConfig is an in-process hub worker writing to schema.
func workerConfig(t testing.TB, h *testHub, schema string, sources ...string) edge.Config {
	cfg := sitetest.Config(t)
	cfg.Role = sink.RoleWorker
	cfg.Routes = nil
	cfg.NATS.URL = h.ClientURL
	cfg.NATS.Sources = sources
	cfg.Sink.Targets[0].Schema = schema
	cfg.Sink.Targets[0].AckWait = 2 * time.Second
	return cfg
}

// startWorker runs a worker until the test ends and waits until its sink consumes.
func startWorker(t testing.TB, cfg edge.Config) *edge.Site {
	t.Helper()
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.WarnLevel).With().Str("worker", "").Timestamp().Logger()
	w, err := edge.New(cfg, log)
	if err != nil {
		t.Fatalf("worker: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker stopped with error: %v", err)
		}
	})
	mqtttest.WaitFor(t, 30*time.Second, "worker ready", func() bool { return w.Ready(ctx).Status == "ready" })
	return w
}

// source is the hub stream's source of site, nil when it has none.
func (h *testHub) source(t testing.TB, site string) *jetstream.StreamSourceInfo {
	t.Helper()
	s, err := h.js.Stream(t.Context(), "SLUICE")
	if err != nil {
		return nil
	}
	for _, src := range s.CachedInfo().Sources {
		if src.External != nil && src.External.APIPrefix == "$JS."+site+".API" {
			return src
		}
	}
	return nil
}

// hubStream is the hub stream's state.
func (h *testHub) stream(t testing.TB) jetstream.StreamState {
	t.Helper()
	s, err := h.js.Stream(t.Context(), "SLUICE")
	if err != nil {
		return jetstream.StreamState{}
	}
	return s.CachedInfo().State
}

// countRows counts the readings in schema.
func countRows(t testing.TB, schema string) int64 {
	t.Helper()
	return pgtest.Count(t, schema, "select count(*) from readings")
}
