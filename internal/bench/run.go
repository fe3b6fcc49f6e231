package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// settleTimeout is how long Run waits, once publishing has ended, for rows to stop arriving.
const settleTimeout = 60 * time.Second

// Run executes one benchmark, prints the table to out and returns the result.
func Run(ctx context.Context, cfg Config, out io.Writer) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	kind, _ := kindOf(cfg.Payload)
	res := &Result{Config: cfg, Load1: loadAverage()}

	schema := cfg.Schema
	if cfg.Broker == "" {
		schema = freshSchema()
	}
	probes := make([]string, min(cfg.Connections, 4))
	for i := range probes {
		probes[i] = kind.device(i)
	}
	w, err := newWatcher(ctx, cfg.DatabaseURL, schema, probes, kind.probeMetric)
	if err != nil {
		return nil, err
	}
	defer w.close()
	pg, pgErr := findPostgres(ctx, w.db, cfg.DatabaseURL, w.app)
	sys, err := startSystem(ctx, cfg, schema, w)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := sys.stop(); err != nil {
			fmt.Fprintf(out, "%s exited with %v\n", sys.name, err)
		}
	}()
	w.admin = sys.admin
	res.System, res.Child = sys.name, sys.child
	res.ReadingsPerMessage = kind.readings
	if cfg.Peer != "" {
		res.ReadingsPerMessage = 1 // a row per message
	}

	// Connect every publisher before the clock starts.
	pubs := make([]mqttClient, cfg.Connections)
	for i := range pubs {
		id := fmt.Sprintf("sluice-bench-%d-%d", os.Getpid(), i)
		var p mqttClient
		var err error
		if cfg.Client == ClientPaho {
			p, err = dialPaho(sys.broker, id, byte(cfg.QoS), cfg.Inflight)
		} else {
			p, err = dialPublisher(sys.broker, id, byte(cfg.QoS), cfg.Inflight)
		}
		if err != nil {
			for _, p := range pubs[:i] {
				p.close()
			}
			return nil, err
		}
		pubs[i] = p
	}
	defer func() {
		for _, p := range pubs {
			p.close()
		}
	}()

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var watching sync.WaitGroup
	if sys.probes {
		watching.Add(1)
		go func() { defer watching.Done(); w.runProbes(watchCtx) }()
	}
	if sys.polled {
		// Serving /metrics costs Sluice CPU the peer does not pay: poll no faster than the
		// end of a run needs (100 ms on a run of seconds).
		interval := 100 * time.Millisecond
		if sys.admin == "" {
			interval = 500 * time.Millisecond
		}
		watching.Add(1)
		go func() { defer watching.Done(); w.runCommitted(watchCtx, interval) }()
	}

	var startRows int64
	if s, ok := waitSample(ctx, w); ok {
		startRows = s.rows
	}
	procs0 := readProcs(sys.procs)
	var pg0 pgSnapshot
	if pg != nil {
		pg0 = pg.snapshot()
	}
	gen0 := selfCPU()
	start := time.Now()

	// Publish.
	var written atomic.Int64
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	deadline := time.Time{}
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}
	errs := make(chan error, len(pubs))
	var wg sync.WaitGroup
	for i, p := range pubs {
		n := 0
		if cfg.Messages > 0 {
			n = cfg.Messages / len(pubs)
			if i < cfg.Messages%len(pubs) {
				n++
			}
		}
		var every time.Duration
		if cfg.Rate > 0 {
			every = time.Duration(float64(time.Second) * float64(len(pubs)) / cfg.Rate)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- load(loadCtx, p, kind, i, n, deadline, every, start, &written)
		}()
	}

	// The outage: cut the database off for cfg.Outage, a while after the load started.
	outage := make(chan outageMarks, 1)
	if proxy := sys.proxy; proxy != nil {
		go func() {
			warm := min(3*time.Second, cfg.Duration/5)
			select {
			case <-time.After(warm):
			case <-loadCtx.Done():
				return
			}
			var m outageMarks
			m.cut = time.Now()
			proxy.Cut()
			select {
			case <-time.After(cfg.Outage):
			case <-loadCtx.Done():
			}
			proxy.Restore()
			m.restored = time.Now()
			m.sentAtRestore = written.Load()
			m.ackedAtRestore = ackedTotal(pubs)
			outage <- m
		}()
	}

	wg.Wait()
	close(errs)
	var loadErr error
	for err := range errs {
		loadErr = errors.Join(loadErr, err)
	}
	for _, p := range pubs {
		if err := p.drain(30 * time.Second); err != nil {
			loadErr = errors.Join(loadErr, err)
		}
	}
	pubEnd := time.Now()
	if loadErr != nil {
		return nil, fmt.Errorf("load: %w", loadErr)
	}
	res.Written = written.Load()
	res.Acked = ackedTotal(pubs)
	res.Sent = res.Written
	if cfg.QoS > 0 {
		res.Sent = res.Acked
	}
	res.PublishSeconds = pubEnd.Sub(start).Seconds()
	res.ExpectedRows = res.Sent * int64(res.ReadingsPerMessage)

	// Wait until every row is committed (or nothing more arrives).
	doneAt, rows := waitRows(ctx, w, startRows+res.Sent*int64(res.ReadingsPerMessage))
	res.CommittedRows = rows - startRows
	res.Seconds = doneAt.Sub(start).Seconds()
	procs1 := readProcs(sys.procs)
	if pg != nil {
		c := cpuBetween(pg0, pg.snapshot(), pg.own(ctx, w.db))
		res.PGCPU, res.PGWatcherCPU, res.PGProcesses = c.server.Seconds(), c.own.Seconds(), c.processes
	} else {
		res.PGNote = pgErr.Error()
	}
	stopWatch()
	watching.Wait()
	if m, err := w.scrape(ctx, "sluice_buffer_group_messages_sum", "sluice_buffer_group_messages_count",
		"sluice_buffer_fsync_seconds_sum", "sluice_buffer_fsync_seconds_count"); err == nil {
		res.Groups = int64(m["sluice_buffer_group_messages_count"])
		res.GroupedMessages = int64(m["sluice_buffer_group_messages_sum"])
		res.Fsyncs = int64(m["sluice_buffer_fsync_seconds_count"])
		res.FsyncSeconds = m["sluice_buffer_fsync_seconds_sum"]
	}
	for _, p := range sys.procs {
		a, okA := procs0[p.pid]
		b, okB := procs1[p.pid]
		if !okA || !okB {
			continue
		}
		res.Procs = append(res.Procs, ProcCost{Name: p.name, CPU: (b.cpu - a.cpu).Seconds(), RSS: b.hwmRSS})
	}
	res.GeneratorCPU = (selfCPU() - gen0).Seconds()
	if n, err := sys.count(ctx); err == nil {
		res.TableRows = n
	} else {
		res.TableRows = -1
	}
	for _, p := range pubs {
		res.puback = append(res.puback, p.latencies()...)
	}
	w.mu.Lock()
	res.e2e = w.e2e
	samples := w.samples
	w.mu.Unlock()
	res.PeakRowsPerSecond = peakRate(samples, time.Second)
	if sys.proxy != nil {
		select {
		case m := <-outage:
			res.Drain = drainOf(m, samples, startRows, int64(res.ReadingsPerMessage), cfg.QoS)
		default:
		}
	}
	res.finish()
	res.print(out)
	return res, nil
}

// readProcs reads the CPU time and peak RSS of each process it can.
func readProcs(procs []proc) map[int]procStats {
	out := map[int]procStats{}
	for _, p := range procs {
		if s, err := readProc(p.pid); err == nil {
			out[p.pid] = s
		}
	}
	return out
}

// load publishes from one connection until n messages (n > 0) or the deadline, at one
// message per every (0: as fast as the window allows).
func load(ctx context.Context, p mqttClient, kind payloadKind, dev, n int, deadline time.Time, every time.Duration,
	start time.Time, written *atomic.Int64) error {
	topic := kind.topic(dev)
	payload := make([]byte, 0, 1024)
	scratch := make([]byte, 0, 1100)
	next := start
	var last time.Time
	for seq := uint64(0); n <= 0 || seq < uint64(n); seq++ {
		if ctx.Err() != nil {
			return nil
		}
		now := time.Now()
		if !deadline.IsZero() && !now.Before(deadline) {
			break
		}
		if every > 0 {
			if wait := next.Sub(now); wait > 0 {
				if err := p.flush(); err != nil {
					return err
				}
				time.Sleep(wait)
				now = time.Now()
			}
			next = next.Add(every)
		}
		// Reading times are unique per device, in microseconds as PostgreSQL stores them.
		now = now.Truncate(time.Microsecond)
		if !now.After(last) {
			now = last.Add(time.Microsecond)
		}
		last = now
		payload = kind.appendPayload(payload[:0], dev, seq, now)
		var err error
		if scratch, err = p.publish(topic, payload, scratch); err != nil {
			return err
		}
		written.Add(1)
	}
	return p.flush()
}

func ackedTotal(pubs []mqttClient) int64 {
	var n int64
	for _, p := range pubs {
		n += p.ackedCount()
	}
	return n
}

func waitSample(ctx context.Context, w *watcher) (sample, bool) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if s, ok := w.lastSample(); ok {
			return s, true
		}
		select {
		case <-ctx.Done():
			return sample{}, false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return sample{}, false
}

// waitRows waits until the committed rows reach want, or stop growing for a while, and
// returns when the last of them was first seen and how many there were.
func waitRows(ctx context.Context, w *watcher, want int64) (time.Time, int64) {
	last, _ := w.lastSample()
	lastChange := time.Now()
	for deadline := time.Now().Add(settleTimeout); time.Now().Before(deadline); {
		s, ok := w.lastSample()
		if ok && s.rows >= want {
			return s.at, s.rows
		}
		if ok && s.rows != last.rows {
			last, lastChange = s, time.Now()
		}
		if time.Since(lastChange) > 10*time.Second {
			break
		}
		select {
		case <-ctx.Done():
			return last.at, last.rows
		case <-time.After(10 * time.Millisecond):
		}
	}
	return last.at, last.rows
}

// outageMarks are the instants of an outage and the load at its end.
type outageMarks struct {
	cut, restored                 time.Time
	sentAtRestore, ackedAtRestore int64
}

// drainOf measures the catch-up after the outage from the committed-row samples: from the
// first commit after the restore until the rows of every message sent before the restore
// are in.
func drainOf(m outageMarks, samples []sample, startRows, perMsg int64, qos int) *Drain {
	d := &Drain{Outage: m.restored.Sub(m.cut)}
	before := m.sentAtRestore
	if qos > 0 {
		before = m.ackedAtRestore
	}
	target := startRows + before*perMsg
	var atRestore sample
	for _, s := range samples {
		if !s.at.After(m.restored) {
			atRestore = s
			continue
		}
		if d.Resumed.IsZero() && s.rows > atRestore.rows {
			d.Resumed = s.at
			d.ResumeDelay = s.at.Sub(m.restored)
		}
		if s.rows >= target {
			d.Backlog = target - atRestore.rows
			d.Done = s.at
			if span := s.at.Sub(m.restored) - d.ResumeDelay; span > 0 {
				d.RowsPerSecond = float64(s.rows-atRestore.rows) / span.Seconds()
			}
			return d
		}
	}
	return d
}

func peakRate(samples []sample, window time.Duration) float64 {
	peak := 0.0
	j := 0
	for i := range samples {
		for j < i && samples[i].at.Sub(samples[j].at) > window {
			j++
		}
		if span := samples[i].at.Sub(samples[j].at); span >= window/2 {
			peak = max(peak, float64(samples[i].rows-samples[j].rows)/span.Seconds())
		}
	}
	return peak
}

func dropSchema(dbURL, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
}
