package edge_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/internal/proctest"
	"github.com/sluice-iot/sluice/internal/tcpproxy"
)

// proc is a `sluice run` process of the fleet, restartable with the same configuration.
type proc struct {
	name, config, httpAddr, mqttAddr string
	cmd                              *exec.Cmd
	log                              string
}

func startProc(t *testing.T, name, dir, yaml, httpAddr, mqttAddr string) *proc {
	t.Helper()
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, config: path, httpAddr: httpAddr, mqttAddr: mqttAddr, log: filepath.Join(dir, name+".log")}
	p.start(t)
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Signal(syscall.SIGTERM)
			p.cmd.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("%s log (tail):\n%s", p.name, b)
		}
	})
	return p
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	bin := proctest.Sluice(t)
	log, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	p.cmd = exec.Command(bin, "run", "--config", p.config)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, 60*time.Second, p.name+" answering /healthz", func() bool {
		r, err := http.Get("http://" + p.httpAddr + "/healthz")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusOK
	})
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
}

// ready reports whether /readyz answers status ready.
func (p *proc) ready() bool {
	r, err := http.Get("http://" + p.httpAddr + "/readyz")
	if err != nil {
		return false
	}
	defer r.Body.Close()
	var b [512]byte
	n, _ := r.Body.Read(b[:])
	return strings.Contains(string(b[:n]), `"status":"ready"`)
}

func edgeYAML(dir, site, mqttAddr, httpAddr, hubAddr string) string {
	return fmt.Sprintf(`role: edge
data_dir: %q
log: {level: info, format: json}
http: {address: %q}
mqtt: {listeners: [{type: tcp, address: %q}]}
nats:
  site: %s
  hub: {urls: ["nats-leaf://%s"], user: %s, password: %s}
routes: [{topic: "sensors/{device}/up", decoder: json, tenant: fleet}]
`, filepath.Join(dir, site), httpAddr, mqttAddr, site, hubAddr, site, hubPassword)
}

func workerYAML(dir, name, httpAddr, hubURL, schema string, sources []string) string {
	return fmt.Sprintf(`role: worker
data_dir: %q
log: {level: info, format: json}
http: {address: %q}
nats: {url: %q, sources: [%s]}
sink:
  targets:
    - {name: main, database_url: %q, schema: %s, batch_wait: 20ms, retry_max: 500ms, ack_wait: 10s}
`, filepath.Join(dir, name), httpAddr, hubURL, strings.Join(sources, ", "), pgtest.URL(), schema)
}

// load publishes readings of one device with QoS 1 to an edge, one at a time, reconnecting
// when the edge goes away, and records those acknowledged with a PUBACK.
type load struct {
	device string
	every  time.Duration // at most one publish per interval when set; as fast as acknowledged otherwise
	mu     sync.Mutex
	addr   string
	acked  []int       // sequence numbers acknowledged
	ackAt  []time.Time // when each was acknowledged
	tried  int
	stop   chan struct{}
	done   chan struct{}
}

func startLoad(device, addr string) *load { return startPacedLoad(device, addr, 0) }

// startPacedLoad is a load that offers at most one reading per every.
func startPacedLoad(device, addr string, every time.Duration) *load {
	l := &load{device: device, addr: addr, every: every, stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

func (l *load) run() {
	defer close(l.done)
	seq := 0
	var pace <-chan time.Time
	if l.every > 0 {
		tick := time.NewTicker(l.every)
		defer tick.Stop()
		pace = tick.C
	}
	for {
		opts := paho.NewClientOptions().AddBroker("tcp://" + l.addr).SetClientID("load-" + l.device).
			SetAutoReconnect(false).SetCleanSession(true).SetConnectTimeout(time.Second)
		c := paho.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(2*time.Second) || tok.Error() != nil {
			select {
			case <-l.stop:
				return
			case <-time.After(100 * time.Millisecond): // the edge is restarting
				continue
			}
		}
		for c.IsConnected() {
			select {
			case <-l.stop:
				c.Disconnect(100)
				return
			default:
			}
			if pace != nil {
				select {
				case <-l.stop:
					c.Disconnect(100)
					return
				case <-pace:
				}
			}
			seq++
			l.mu.Lock()
			l.tried = seq
			l.mu.Unlock()
			tok := c.Publish("sensors/"+l.device+"/up", 1, false, fmt.Sprintf(`{"time":%d,"v":%d}`, 1_700_000_000_000+seq, seq))
			if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
				l.mu.Lock()
				l.acked = append(l.acked, seq)
				l.ackAt = append(l.ackAt, time.Now())
				l.mu.Unlock()
			}
		}
		c.Disconnect(0)
	}
}

func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

func (l *load) finish() []int {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked
}

// fleetCut is how long every edge's link is cut: SLUICE_FLEET_CUT (e.g. 60s), 3s by default.
func fleetCut(t *testing.T) time.Duration {
	if v := os.Getenv("SLUICE_FLEET_CUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SLUICE_FLEET_CUT: %v", err)
		}
		return d
	}
	return 3 * time.Second
}

// Three edge processes under QoS 1 load, their links to the hub cut all at once for
// SLUICE_FLEET_CUT, one edge killed with SIGKILL during the cut and one worker during the
// catch-up after it, then a fourth edge
// that buffered on its own disk before its link ever came up: every acknowledged reading is in
// the database exactly once.
func TestFleetProcessesSurviveCutsAndKills(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six processes")
	}
	sites := []string{"e1", "e2", "e3", "e4"}
	hub := startHub(t, sites...)
	schema := pgtest.Schema(t)
	dir := t.TempDir()

	edges := map[string]*proc{}
	proxies := map[string]*tcpproxy.Proxy{}
	startEdge := func(site string, cut bool) *proc {
		proxies[site] = tcpproxy.Start(t, hub.LeafAddr)
		if cut {
			proxies[site].Cut()
		}
		h, m := mqtttest.FreeAddr(t), mqtttest.FreeAddr(t)
		edges[site] = startProc(t, site, dir, edgeYAML(dir, site, m, h, proxies[site].Addr), h, m)
		return edges[site]
	}
	for _, s := range sites[:3] {
		e := startEdge(s, false)
		mqtttest.WaitFor(t, 60*time.Second, s+" ready (linked to the hub)", e.ready)
	}
	// The workers after the first sites: the hub's sourcing of a site not there yet backs off.
	var workers []*proc
	for i := range 2 {
		name := fmt.Sprintf("worker%d", i+1)
		h := mqtttest.FreeAddr(t)
		workers = append(workers, startProc(t, name, dir, workerYAML(dir, name, h, hub.ClientURL, schema, sites), h, ""))
	}
	for _, w := range workers {
		mqtttest.WaitFor(t, 60*time.Second, w.name+" ready", w.ready)
	}
	loads := map[string]*load{}
	for _, s := range sites[:3] {
		loads[s] = startLoad(s, edges[s].mqttAddr)
	}
	enough := func(n int) func() bool {
		return func() bool {
			for _, s := range sites[:3] {
				if loads[s].count() < n {
					return false
				}
			}
			return true
		}
	}
	mqtttest.WaitFor(t, 60*time.Second, "readings acknowledged on every edge", enough(200))

	cut := fleetCut(t)
	for _, s := range sites[:3] {
		proxies[s].Cut()
	}
	cutAt := time.Now()
	t.Logf("links cut for %v", cut)
	before := map[string]int{}
	for _, s := range sites[:3] {
		before[s] = loads[s].count()
	}
	edges["e2"].kill(t)
	edges["e2"].start(t) // its acknowledged readings are on its disk
	// The cut lasts as long as asked; meanwhile the edges take readings on their disks.
	time.Sleep(time.Until(cutAt.Add(cut)))
	for _, s := range sites[:3] {
		if loads[s].count() <= before[s] && s != "e2" {
			t.Errorf("%s took no readings while its link was cut", s)
		}
		proxies[s].Restore()
	}
	restored := time.Now()
	// A worker dies while the sites catch up: its batches in hand go to the other after ack_wait.
	mqtttest.WaitFor(t, 30*time.Second, "rows from the catch-up", func() bool { return countRows(t, schema) > 0 })
	workers[0].kill(t)
	mqtttest.WaitFor(t, 60*time.Second, "more readings after the links are back", enough(before["e1"]+100))

	// A fourth edge buffers before its link ever comes up, then catches up from its disk.
	e4 := startEdge("e4", true)
	loads["e4"] = startLoad("e4", e4.mqttAddr)
	mqtttest.WaitFor(t, 60*time.Second, "e4 buffering on its disk", func() bool { return loads["e4"].count() >= 300 })
	acked := map[string][]int{}
	for _, s := range sites {
		acked[s] = loads[s].finish()
	}
	proxies["e4"].Restore()

	total := 0
	for _, s := range sites {
		total += len(acked[s])
	}
	defer func() {
		if !t.Failed() {
			return
		}
		t.Logf("rows %d of %d acknowledged; hub stream %+v", countRows(t, schema), total, hub.stream(t))
		if hs, err := hub.js.Stream(context.Background(), "SLUICE"); err == nil {
			for _, src := range hs.CachedInfo().Sources {
				t.Logf("hub source %s: lag %d, active %v, error %v", src.External.APIPrefix, src.Lag, src.Active, src.Error)
			}
		}
		for _, s := range sites {
			r, err := http.Get("http://" + edges[s].httpAddr + "/status")
			if err == nil {
				b, _ := io.ReadAll(r.Body)
				r.Body.Close()
				t.Logf("%s: %d acknowledged, %d rows; /status %s", s, len(acked[s]), pgtest.Count(t, schema, "select count(*) from readings where device = $1", s), b)
			}
		}
		if c, err := hub.js.Consumer(context.Background(), "SLUICE", "sink-main"); err == nil {
			i := c.CachedInfo()
			t.Logf("hub consumer sink-main: pending %d, ack pending %d, redelivered %d, ack floor %+v, delivered %+v", i.NumPending, i.NumAckPending, i.NumRedelivered, i.AckFloor, i.Delivered)
		}
	}()
	mqtttest.WaitFor(t, 5*time.Minute, "every acknowledged reading in the database", func() bool {
		return countRows(t, schema) >= int64(total)
	})
	t.Logf("%d readings acknowledged; all in the database %v after the links came back", total, time.Since(restored).Round(time.Millisecond))
	for _, s := range sites {
		got := pgtest.Count(t, schema, "select count(*) from readings where device = $1 and value = any($2::float8[])", s, acked[s])
		if got != int64(len(acked[s])) {
			t.Errorf("%s: %d of %d acknowledged readings missing", s, int64(len(acked[s]))-got, len(acked[s]))
		}
	}
	if dup := pgtest.Count(t, schema, "select count(*) - count(distinct (device, time)) from readings"); dup != 0 {
		t.Errorf("%d readings stored twice", dup)
	}
}
