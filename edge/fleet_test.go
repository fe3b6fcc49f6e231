package edge_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-iot/sluice/internal/metrictest"
	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/internal/sitetest"
)

// publishQoS1 publishes n readings of device on the site at addr with QoS 1 and fails t unless
// every one is acknowledged.
func publishQoS1(t *testing.T, addr, device string, from, n int) {
	t.Helper()
	c := mqtttest.Connect(t, addr, "pub-"+device)
	defer c.Disconnect(100)
	for i := from; i < from+n; i++ {
		tok := c.Publish("sensors/"+device+"/up", 1, false, fmt.Sprintf(`{"time":%d,"t":%d}`, 1_700_000_000_000+i, i))
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s #%d: %v", device, i, tok.Error())
		}
	}
}

// The hub stream sources every site listed by the workers; each site's readings reach the
// database once, and the hub de-duplicates per site (message ids carry the site).
func TestFleetHubSourcesEverySite(t *testing.T) {
	hub := startHub(t, "s1", "s2")
	schema := pgtest.Schema(t)
	c1, _ := edgeConfig(t, hub, "s1")
	c2, _ := edgeConfig(t, hub, "s2")
	e1, e2 := sitetest.Start(t, c1), sitetest.Start(t, c2)
	// The sites first: the hub's sourcing of a site not there yet backs off (docs/fleet.md).
	startWorker(t, workerConfig(t, hub, schema, "s1", "s2"))

	const n = 200
	publishQoS1(t, e1.MQTTAddr, "d1", 0, n)
	publishQoS1(t, e2.MQTTAddr, "d2", 0, n)
	mqtttest.WaitFor(t, 60*time.Second, "every reading of both sites in the database", func() bool {
		return countRows(t, schema) >= 2*n
	})
	for _, d := range []string{"d1", "d2"} {
		if got := pgtest.Count(t, schema, "select count(distinct time) from readings where device = $1", d); got != n {
			t.Errorf("device %s: %d distinct readings, want %d", d, got, n)
		}
	}
	if got := countRows(t, schema); got != 2*n {
		t.Errorf("rows: got %d, want %d", got, 2*n)
	}
	s, err := hub.js.Stream(t.Context(), "SLUICE")
	if err != nil {
		t.Fatal(err)
	}
	sites := map[string]int{}
	for seq := uint64(1); seq <= s.CachedInfo().State.LastSeq; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		site, _, _ := strings.Cut(m.Header.Get(jetstream.MsgIDHeader), ":")
		sites[site]++
	}
	if sites["s1"] != n || sites["s2"] != n || len(sites) != 2 {
		t.Errorf("hub stream message ids by site: got %v, want %d each of s1 and s2", sites, n)
	}
	for _, e := range []*sitetest.Site{e1, e2} {
		mqtttest.WaitFor(t, 10*time.Second, "the hub holding everything", func() bool {
			h := e.Status(t.Context()).Hub
			return h != nil && h.Connected && h.LagMessages == 0
		})
	}
}

// A site's leafnode user may publish to the hub its own delivery subject and replies, nothing
// else: a rogue server linked with site s1's credentials (and none of an edge's own limits)
// cannot inject readings as s2, publish readings to the hub, or call the hub's JetStream API.
func TestFleetSiteWritesOnlyItsOwnSubjects(t *testing.T) {
	hub := startHub(t, "s1", "s2")
	schema := pgtest.Schema(t)
	startWorker(t, workerConfig(t, hub, schema, "s1", "s2"))

	u, _ := url.Parse("nats-leaf://" + hub.LeafAddr)
	u.User = url.UserPassword("s1", hubPassword)
	rogue, err := server.NewServer(&server.Options{
		ServerName: "rogue", Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		LeafNode: server.LeafNodeOpts{Remotes: []*server.RemoteLeafOpts{{URLs: []*url.URL{u}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rogue.Start()
	t.Cleanup(rogue.Shutdown)
	mqtttest.WaitFor(t, 10*time.Second, "the rogue's leafnode link", func() bool { return rogue.NumLeafNodes() == 1 })

	// What arrives at the hub, seen by a subscriber there.
	hnc := hub.js.Conn()
	seen := make(chan string, 100)
	sub, err := hnc.Subscribe(">", func(m *nats.Msg) {
		if strings.HasPrefix(string(m.Data), "rogue") {
			seen <- m.Subject + " " + string(m.Data)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	hnc.Flush()

	rnc, err := nats.Connect(rogue.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer rnc.Close()
	denied := []string{"sluice.fleet.s2.x", "sluice.up.default.d1", "sluice.err.default.d1", "sluice.dlq.main",
		"$JS.hub.API.STREAM.DELETE.SLUICE", "$JS.API.STREAM.DELETE.SLUICE", "$JS.s2.API.STREAM.DELETE.SLUICE"}
	// The hub may need a moment to learn the rogue's interest; the allowed subject, published
	// last each round, shows the link carries messages.
	mqtttest.WaitFor(t, 10*time.Second, "a message on the site's own subject at the hub", func() bool {
		for _, s := range denied {
			rnc.Publish(s, []byte("rogue "+s))
		}
		rnc.Publish("sluice.fleet.s1.x", []byte("rogue control"))
		rnc.Flush()
		select {
		case s := <-seen:
			if !strings.HasPrefix(s, "sluice.fleet.s1.x ") {
				t.Fatalf("the hub received %q from site s1's link", s)
			}
			return true
		case <-time.After(200 * time.Millisecond):
			return false
		}
	})
	// Once more with the link up: messages of one publisher arrive in order, so once the last
	// control message is in, anything denied would have arrived before it.
	for _, s := range denied {
		rnc.Publish(s, []byte("rogue "+s))
	}
	rnc.Publish("sluice.fleet.s1.x", []byte("rogue final"))
	rnc.Flush()
	for final := false; !final; {
		select {
		case s := <-seen:
			if !strings.HasPrefix(s, "sluice.fleet.s1.x ") {
				t.Errorf("the hub received %q from site s1's link", s)
			}
			final = s == "sluice.fleet.s1.x rogue final"
		case <-time.After(10 * time.Second):
			t.Fatal("the last control message never reached the hub")
		}
	}
	if _, err := hub.js.Stream(t.Context(), "SLUICE"); err != nil {
		t.Errorf("hub stream after the rogue's attempts: %v", err)
	}
	if got := countRows(t, schema); got != 0 {
		t.Errorf("rows from the rogue: got %d, want 0", got)
	}
}

// An edge reclaims committed history only for what the hub holds: with the link cut and the
// buffer past 90 % of its budget, reclaim removes the messages the hub acknowledged, and no
// more; once the link is back, the hub catches up with the rest, every reading once.
func TestFleetEdgeReclaimsOnlyWhatTheHubHolds(t *testing.T) {
	hub := startHub(t, "s1")
	schema := pgtest.Schema(t)
	cfg, proxy := edgeConfig(t, hub, "s1")
	cfg.NATS.MaxBytes = 1 << 20
	cfg.NATS.Listen = mqtttest.FreeAddr(t)
	e := sitetest.Start(t, cfg)
	startWorker(t, workerConfig(t, hub, schema, "s1"))
	nc, err := nats.Connect("nats://" + cfg.NATS.Listen)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	state := func() jetstream.StreamState {
		s, err := js.Stream(t.Context(), "SLUICE")
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().State
	}

	c := mqtttest.Connect(t, e.MQTTAddr, "pub-reclaim")
	defer c.Disconnect(100)
	note := strings.Repeat("x", 1000) // a text reading, within limits.max_value_bytes
	seq := 0
	publish := func(n int) {
		for range n {
			seq++
			tok := c.Publish("sensors/d1/up", 1, false, fmt.Sprintf(`{"time":%d,"v":%d,"note":%q}`, 1_700_000_000_000+seq, seq, note))
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish #%d: %v", seq, tok.Error())
			}
		}
	}
	const held = 50
	publish(held)
	mqtttest.WaitFor(t, 30*time.Second, "the hub holding the first readings", func() bool {
		h := e.Status(t.Context()).Hub
		return h.HeldSequence == held && h.LagMessages == 0
	})
	if got := metrictest.Value(t, e.Registry(), "sluice_fleet_hub_connected", "", ""); got != 1 {
		t.Errorf("sluice_fleet_hub_connected with the link up: got %v, want 1", got)
	}
	per := state().Bytes / held
	proxy.Cut()
	mqtttest.WaitFor(t, 10*time.Second, "the link down", func() bool { return !e.Status(t.Context()).Hub.Connected })
	if r := e.Ready(t.Context()); r.Status != "degraded" || r.Hub != "disconnected" {
		t.Errorf("readiness with the link cut: got %q, hub %q; want degraded, disconnected", r.Status, r.Hub)
	}
	if got := metrictest.Value(t, e.Registry(), "sluice_fleet_hub_connected", "", ""); got != 0 {
		t.Errorf("sluice_fleet_hub_connected with the link cut: got %v, want 0", got)
	}
	// Up to 93 % of the budget: reclaim (at 90 %) would remove down to 75 %, more than the
	// hub holds.
	total := int(uint64(0.93*float64(cfg.NATS.MaxBytes)) / per)
	if excess := int(uint64(0.18*float64(cfg.NATS.MaxBytes)) / per); excess <= held {
		t.Fatalf("test setup: reclaim would remove %d messages, not more than the %d the hub holds", excess, held)
	}
	publish(total - held)
	mqtttest.WaitFor(t, 30*time.Second, "reclaim of what the hub holds", func() bool { return state().FirstSeq > 1 })
	if st := state(); st.FirstSeq != held+1 || st.LastSeq != uint64(seq) {
		t.Fatalf("after reclaim the edge keeps sequences %d..%d, want %d..%d: it reclaimed what the hub does not hold", st.FirstSeq, st.LastSeq, held+1, seq)
	}
	if h := e.Status(t.Context()).Hub; h.LagMessages != uint64(seq-held) {
		t.Errorf("hub lag while cut: got %d, want %d", h.LagMessages, seq-held)
	}
	mqtttest.WaitFor(t, 10*time.Second, "the lag metric", func() bool {
		return metrictest.Value(t, e.Registry(), "sluice_fleet_hub_lag_messages", "", "") == float64(seq-held)
	})
	proxy.Restore()
	defer func() {
		if t.Failed() {
			hs, _ := hub.js.Stream(context.Background(), "SLUICE")
			info, _ := hs.Info(context.Background())
			for _, s := range info.Sources {
				t.Logf("hub source %s: lag %d active %v error %v", s.External.APIPrefix, s.Lag, s.Active, s.Error)
			}
			t.Logf("hub stream %+v; edge hub %+v; edge stream %+v", info.State, e.Status(context.Background()).Hub, state())
		}
	}()
	mqtttest.WaitFor(t, 60*time.Second, "every reading in the database", func() bool { return countRows(t, schema) >= int64(seq) })
	if got := pgtest.Count(t, schema, "select count(distinct time) from readings"); got != int64(seq) || countRows(t, schema) != int64(seq) {
		t.Errorf("readings: %d distinct of %d rows, want %d once each", got, countRows(t, schema), seq)
	}
}

// A second worker joining shares the target with the first: readings keep flowing, and each
// worker writes part of them.
func TestFleetSecondWorkerSharesTheTarget(t *testing.T) {
	hub := startHub(t, "s1")
	schema := pgtest.Schema(t)
	c1, _ := edgeConfig(t, hub, "s1")
	e1 := sitetest.Start(t, c1)
	startWorker(t, workerConfig(t, hub, schema, "s1"))
	publishQoS1(t, e1.MQTTAddr, "d1", 0, 200)
	mqtttest.WaitFor(t, 30*time.Second, "rows with one worker", func() bool { return countRows(t, schema) >= 200 })
	startWorker(t, workerConfig(t, hub, schema, "s1"))
	publishQoS1(t, e1.MQTTAddr, "d1", 200, 2000)
	start := time.Now()
	mqtttest.WaitFor(t, 30*time.Second, "rows with two workers", func() bool { return countRows(t, schema) >= 2200 })
	t.Logf("2000 readings written %v after the last PUBACK", time.Since(start))
	if src := hub.stream(t); src.Msgs != 2200 {
		t.Errorf("hub stream: %d messages, want 2200", src.Msgs)
	}
	// Both workers tell the site what the hub holds; the floor reaches the last message.
	mqtttest.WaitFor(t, 10*time.Second, "the site's floor at its last message", func() bool {
		h := e1.Status(t.Context()).Hub
		return h.HeldSequence == 2200 && h.LagMessages == 0
	})
}

// After a cut, the hub's server sets a site's source up again with a request that waits 30 s
// for its answer, and a request sent while the link was down waits that out even once the link
// is back. The worker sees the site, which did not answer during the cut, answer again while
// its source is still silent, and restarts the source: the hub resumes after the last message of the site it holds, every reading once,
// and the other site's source is left alone.
func TestFleetWorkerRestartsASilentSource(t *testing.T) {
	hub := startHub(t, "s1", "s2")
	schema := pgtest.Schema(t)
	c1, p1 := edgeConfig(t, hub, "s1")
	c2, _ := edgeConfig(t, hub, "s2")
	e1, e2 := sitetest.Start(t, c1), sitetest.Start(t, c2)
	w := startWorker(t, workerConfig(t, hub, schema, "s1", "s2"))
	publishQoS1(t, e1.MQTTAddr, "d1", 0, 100)
	publishQoS1(t, e2.MQTTAddr, "d2", 0, 100)
	mqtttest.WaitFor(t, 60*time.Second, "the first readings in the database", func() bool { return countRows(t, schema) >= 200 })

	p1.Cut()
	publishQoS1(t, e1.MQTTAddr, "d1", 100, 100)
	// The server asks the site again once the source has been silent 10 s (checked every
	// 10 s): once it has been silent 21 s, a request is waiting for an answer that never comes.
	mqtttest.WaitFor(t, 60*time.Second, "the source of s1 silent for 21s", func() bool {
		src := hub.source(t, "s1")
		return src != nil && src.Active > 21*time.Second
	})
	if got := metrictest.Value(t, w.Registry(), "sluice_fleet_source_restarts_total", "site", "s1"); got != 0 {
		t.Errorf("source restarts with the link down: got %v, want 0", got)
	}
	p1.Restore()
	mqtttest.WaitFor(t, 60*time.Second, "every reading in the database", func() bool { return countRows(t, schema) >= 300 })
	if got := metrictest.Value(t, w.Registry(), "sluice_fleet_source_restarts_total", "site", "s1"); got != 1 {
		t.Errorf("restarts of the source of s1: got %v, want 1", got)
	}
	if got := metrictest.Value(t, w.Registry(), "sluice_fleet_source_restarts_total", "site", "s2"); got != 0 {
		t.Errorf("restarts of the source of s2: got %v, want 0", got)
	}
	if got := pgtest.Count(t, schema, "select count(distinct (device, time)) from readings"); got != 300 || countRows(t, schema) != 300 {
		t.Errorf("readings: %d distinct of %d rows, want 300 once each", got, countRows(t, schema))
	}
	if src := hub.source(t, "s1"); src == nil || hub.stream(t).Msgs != 300 {
		t.Errorf("hub stream: source of s1 %v, %d messages; want the source and 300", src, hub.stream(t).Msgs)
	}
}
