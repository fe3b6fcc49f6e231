package edge_test

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/internal/tcpproxy"
)

// cpuSeconds is the CPU time a process used (user + system), from /proc.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100 // USER_HZ
}

// rssKiB is a process's resident set and its peak, from /proc.
func rssKiB(pid int) (rss, peak int) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "VmRSS:" {
			rss, _ = strconv.Atoi(f[1])
		}
		if len(f) >= 2 && f[0] == "VmHWM:" {
			peak, _ = strconv.Atoi(f[1])
		}
	}
	return rss, peak
}

// postgresCPU is the CPU time of every postgres process.
func postgresCPU() float64 {
	out, _ := exec.Command("pgrep", "-x", "postgres").Output()
	var sum float64
	for _, p := range strings.Fields(string(out)) {
		pid, _ := strconv.Atoi(p)
		sum += cpuSeconds(pid)
	}
	return sum
}

// logTop logs the busiest processes, from top.
func logTop(t *testing.T, when string) {
	out, _ := exec.Command("top", "-b", "-n2", "-d1", "-w", "150", "-o", "%CPU").Output()
	last := string(out)[strings.LastIndex(string(out), "top - "):] // the second sample covers one second
	lines := strings.Split(last, "\n")
	t.Logf("top during %s:\n%s", when, strings.Join(lines[:min(len(lines), 16)], "\n"))
}

func uptime() string {
	out, _ := exec.Command("uptime").Output()
	return strings.TrimSpace(string(out))
}

// TestFleetMeasure measures a fleet on this machine for docs/fleet.md: end-to-end rows/s with
// one and with two workers, the catch-up after every link is cut for SLUICE_FLEET_CUT, the
// latency from PUBACK at an edge to the row in the database, and an edge's memory. It runs
// only with SLUICE_FLEET_MEASURE=1; SLUICE_FLEET_PACE sets each of the 12 publishers' interval
// for the latency (10ms: 1,200 readings/s offered).
func TestFleetMeasure(t *testing.T) {
	if os.Getenv("SLUICE_FLEET_MEASURE") == "" {
		t.Skip("set SLUICE_FLEET_MEASURE=1 to measure")
	}
	const perEdge = 4 // publishers per edge, one QoS 1 publish in flight each
	sites := []string{"m1", "m2", "m3"}
	hub := startHub(t, sites...)
	schema := pgtest.Schema(t)
	dir := t.TempDir()
	t.Logf("before: %s", uptime())

	edges, proxies := map[string]*proc{}, map[string]*tcpproxy.Proxy{}
	for _, s := range sites {
		proxies[s] = tcpproxy.Start(t, hub.LeafAddr)
		h, m := mqtttest.FreeAddr(t), mqtttest.FreeAddr(t)
		edges[s] = startProc(t, s, dir, edgeYAML(dir, s, m, h, proxies[s].Addr), h, m)
		mqtttest.WaitFor(t, 60*time.Second, s+" ready", edges[s].ready)
	}
	var workers []*proc
	addWorker := func() {
		name := fmt.Sprintf("w%d", len(workers)+1)
		h := mqtttest.FreeAddr(t)
		w := startProc(t, name, dir, workerYAML(dir, name, h, hub.ClientURL, schema, sites), h, "")
		mqtttest.WaitFor(t, 60*time.Second, name+" ready", w.ready)
		workers = append(workers, w)
	}
	var loads []*load
	round := 0
	startLoads := func() { // new devices each round: a reading repeated would be a duplicate
		round++
		loads = loads[:0]
		for _, s := range sites {
			for i := range perEdge {
				loads = append(loads, startLoad(fmt.Sprintf("%s-%d-%d", s, i, round), edges[s].mqttAddr))
			}
		}
	}
	var done int // readings acknowledged by loads finished
	acked := func() int {
		n := done
		for _, l := range loads {
			n += l.count()
		}
		return n
	}
	stopLoads := func() {
		for _, l := range loads {
			done += len(l.finish())
		}
		loads = nil
	}
	type sample struct {
		at         time.Time
		rows, pubs int64
		cpu        map[string]float64
	}
	take := func() sample {
		s := sample{at: time.Now(), pubs: int64(acked()), cpu: map[string]float64{}}
		if len(workers) > 0 { // the schema is made by the first worker
			s.rows = countRows(t, schema)
		}
		for _, e := range edges {
			s.cpu["edges"] += cpuSeconds(e.cmd.Process.Pid)
		}
		for _, w := range workers {
			s.cpu["workers"] += cpuSeconds(w.cmd.Process.Pid)
		}
		s.cpu["postgres"] = postgresCPU()
		s.cpu["hub and load"] = cpuSeconds(os.Getpid())
		return s
	}
	report := func(what string, a, b sample) {
		d := b.at.Sub(a.at).Seconds()
		var cpu []string
		for _, k := range []string{"edges", "workers", "postgres", "hub and load"} {
			cpu = append(cpu, fmt.Sprintf("%s %.2f", k, (b.cpu[k]-a.cpu[k])/d))
		}
		t.Logf("%s: %.0f rows/s written, %.0f readings/s acknowledged over %.0fs; CPU cores: %s; %s",
			what, float64(b.rows-a.rows)/d, float64(b.pubs-a.pubs)/d, d, strings.Join(cpu, ", "), uptime())
	}

	// The first worker makes the hub stream, which sources the sites from then on.
	addWorker()
	addWorker()
	stopWorkers := func() {
		for _, w := range workers {
			if w.cmd.ProcessState == nil {
				w.cmd.Process.Signal(syscall.SIGTERM)
				w.cmd.Wait()
			}
		}
	}
	stopWorkers()

	// Rounds of one and two workers in turn: the edges take a backlog with no worker running
	// (the hub stream sourcing it), then the workers start together and write it; what they
	// write per second between 10 % and 90 % of the backlog leaves their start-up out.
	for i, n := range []int{1, 2, 1, 2, 1, 2} {
		startLoads()
		a := take()
		time.Sleep(20 * time.Second)
		if i == 0 {
			logTop(t, "ingest")
			report("ingest into 3 edges, the hub stream sourcing them, no worker", a, take())
		}
		stopLoads()
		total := int64(acked())
		mqtttest.WaitFor(t, 5*time.Minute, "the hub holding the backlog", func() bool { return hub.stream(t).Msgs >= uint64(total) })
		from := countRows(t, schema)
		lo, hi := from+(total-from)/10, from+(total-from)*9/10
		var wg sync.WaitGroup
		for _, w := range workers[:n] {
			wg.Go(func() { w.start(t) }) // the workers start together
		}
		var a10, a90 sample
		for a90.at.IsZero() {
			switch rows := countRows(t, schema); {
			case rows >= hi:
				a90 = take()
			case rows >= lo && a10.at.IsZero():
				a10 = take()
			}
			time.Sleep(20 * time.Millisecond)
		}
		wg.Wait()
		if i == 1 {
			logTop(t, "2 workers draining")
		}
		report(fmt.Sprintf("round %d: %d worker(s) writing a backlog of %d readings, 10-90 %%", i+1, n, total-from), a10, a90)
		mqtttest.WaitFor(t, 5*time.Minute, "the backlog written", func() bool { return countRows(t, schema) >= total })
		stopWorkers()
	}
	for _, w := range workers {
		w.start(t)
		mqtttest.WaitFor(t, 60*time.Second, w.name+" ready", w.ready)
	}
	// End to end under load, with both workers.
	startLoads()
	time.Sleep(5 * time.Second)
	a := take()
	time.Sleep(15 * time.Second)
	logTop(t, "end to end")
	report("end to end, 3 edges, 2 workers, publishers as fast as acknowledged", a, take())
	stopLoads()
	behind := int64(acked())
	mqtttest.WaitFor(t, 5*time.Minute, "the end-to-end backlog written", func() bool { return countRows(t, schema) >= behind })

	// Latency at an offered rate the fleet sustains: every publisher paced, and for each
	// reading acknowledged the first poll that finds its row.
	every := 10 * time.Millisecond
	if v := os.Getenv("SLUICE_FLEET_PACE"); v != "" { // one reading per publisher per v
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SLUICE_FLEET_PACE: %v", err)
		}
		every = d
	}
	round++
	for _, s := range sites {
		for i := range perEdge {
			loads = append(loads, startPacedLoad(fmt.Sprintf("%s-%d-%d", s, i, round), edges[s].mqttAddr, every))
		}
	}
	time.Sleep(3 * time.Second)
	var lat []time.Duration
	a = take()
	deadline := time.Now().Add(20 * time.Second)
	mark := map[string]int{}
	for _, l := range loads {
		mark[l.device] = l.count()
	}
	for time.Now().Before(deadline) {
		for _, l := range loads {
			l.mu.Lock()
			n := len(l.acked)
			seqs, ats := slices.Clone(l.acked[mark[l.device]:n]), slices.Clone(l.ackAt[mark[l.device]:n])
			l.mu.Unlock()
			if len(seqs) == 0 {
				continue
			}
			top := pgtest.Count(t, schema, "select coalesce(max(value), 0)::bigint from readings where device = $1", l.device)
			now := time.Now()
			k := 0
			for k < len(seqs) && int64(seqs[k]) <= top {
				lat = append(lat, now.Sub(ats[k]))
				k++
			}
			mark[l.device] += k
		}
		time.Sleep(20 * time.Millisecond)
	}
	logTop(t, "paced")
	report(fmt.Sprintf("paced: %d publishers, one reading per %v each (%.0f/s offered), 2 workers", len(loads), every, float64(len(loads))/every.Seconds()), a, take())
	slices.Sort(lat)
	if len(lat) > 0 {
		q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))].Round(time.Millisecond) }
		t.Logf("PUBACK → row in the database, paced, 2 workers, polled every 20ms: %d readings, p50 %v, p90 %v, p99 %v", len(lat), q(0.5), q(0.9), q(0.99))
	}
	stopLoads()
	startLoads()

	// Catch-up: every link cut for SLUICE_FLEET_CUT under the same load, then restored.
	cut := fleetCut(t)
	for _, s := range sites {
		proxies[s].Cut()
	}
	before := take()
	time.Sleep(cut)
	for _, s := range sites {
		proxies[s].Restore()
	}
	atCut := take()
	t.Logf("cut %v: %d readings acknowledged meanwhile, %d not in the database at the restore", cut, atCut.pubs-before.pubs, atCut.pubs-atCut.rows)
	stopLoads()
	total := int64(acked())
	restored, hubAt := time.Now(), hub.stream(t).Msgs
	mqtttest.WaitFor(t, 5*time.Minute, "the hub sourcing again", func() bool { return hub.stream(t).Msgs > hubAt })
	logTop(t, "catch-up")
	t.Logf("the hub sources again %v after the restore", time.Since(restored).Round(100*time.Millisecond))
	flowing := take()
	mqtttest.WaitFor(t, 5*time.Minute, "the hub holding everything", func() bool { return hub.stream(t).Msgs >= uint64(total) })
	t.Logf("the hub holds everything %v after the restore: %.0f messages/s sourced from 3 sites once going",
		time.Since(restored).Round(100*time.Millisecond), float64(uint64(total)-hubAt)/time.Since(flowing.at).Seconds())
	mqtttest.WaitFor(t, 10*time.Minute, "the catch-up", func() bool { return countRows(t, schema) >= total })
	end := take()
	t.Logf("every reading in the database %v after the restore", time.Since(restored).Round(100*time.Millisecond))
	report("catch-up once the hub sources again, 2 workers", flowing, end)
	for _, s := range sites {
		rss, peak := rssKiB(edges[s].cmd.Process.Pid)
		t.Logf("edge %s: RSS %d MiB, peak %d MiB", s, rss/1024, peak/1024)
	}
	for _, w := range workers {
		rss, peak := rssKiB(w.cmd.Process.Pid)
		t.Logf("worker %s: RSS %d MiB, peak %d MiB", w.name, rss/1024, peak/1024)
	}
	if got := pgtest.Count(t, schema, "select count(*) - count(distinct (device, time)) from readings"); got != 0 {
		t.Errorf("%d readings stored twice", got)
	}
}
