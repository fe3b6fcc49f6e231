package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// probeInterval is how often the watcher looks for newly visible probe rows: the resolution
// of the end-to-end latency.
const probeInterval = 5 * time.Millisecond

// watcher observes the database side: when the rows of a few probe series become visible
// (end-to-end latency) and how many rows the sink has committed.
type watcher struct {
	db     *pgxpool.Pool
	app    string // application_name of its connections
	admin  string // host:port of Sluice's admin listener, "" when unknown
	http   *http.Client
	probes []string // device ids whose probe metric is watched
	metric string

	mu      sync.Mutex
	e2e     []uint32 // µs
	samples []sample // committed rows over time
}

type sample struct {
	at   time.Time
	rows int64
}

func newWatcher(ctx context.Context, dbURL, schema string, probes []string, metric string) (*watcher, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	cfg.MaxConns = 3
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	app := fmt.Sprintf("sluice-bench-%d", os.Getpid())
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	db, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = db.Ping(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to the database: %w", err)
	}
	// Uncompressed: gzip would make Sluice spend CPU on the benchmark's polling.
	return &watcher{db: db, app: app,
		http:   &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableCompression: true}},
		probes: probes, metric: metric}, nil
}

// runProbes records, until ctx ends, the latency from a probe row's time (when the generator
// published it) to the first poll that sees it.
func (w *watcher) runProbes(ctx context.Context) {
	var ids []int64
	var after []time.Time
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if len(ids) < len(w.probes) {
			ids, after = w.findProbes(ctx, ids, after)
			if len(ids) == 0 {
				continue
			}
		}
		polled := time.Now()
		rows, err := w.db.Query(ctx, `SELECT p.i, m.time FROM measurements_standard m
			JOIN unnest($1::bigint[], $2::timestamptz[]) WITH ORDINALITY AS p(id, after, i)
			ON m.series_id = p.id AND m.time > p.after`, ids, after)
		if err != nil {
			continue
		}
		var lat []uint32
		var i int64
		var t time.Time
		pgx.ForEachRow(rows, []any{&i, &t}, func() error {
			lat = append(lat, uint32(max(polled.Sub(t), 0)/time.Microsecond))
			if t.After(after[i-1]) {
				after[i-1] = t
			}
			return nil
		})
		w.mu.Lock()
		w.e2e = append(w.e2e, lat...)
		w.mu.Unlock()
	}
}

func (w *watcher) findProbes(ctx context.Context, ids []int64, after []time.Time) ([]int64, []time.Time) {
	rows, err := w.db.Query(ctx, `SELECT id FROM series WHERE device = ANY($1) AND metric = $2 ORDER BY id`, w.probes, w.metric)
	if err != nil {
		return ids, after
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil || len(found) <= len(ids) {
		return ids, after
	}
	known := map[int64]bool{}
	for _, id := range ids {
		known[id] = true
	}
	for _, id := range found {
		if !known[id] {
			ids, after = append(ids, id), append(after, time.Time{})
		}
	}
	return ids, after
}

// runCommitted samples the sink's committed-rows counter every interval until ctx ends.
func (w *watcher) runCommitted(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if n, err := w.committed(ctx); err == nil {
			w.record(sample{time.Now(), n})
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// committed returns the rows the sink has committed: its sluice_sink_rows_written_total
// counter when the admin listener is known (cheap), else a count of the table.
func (w *watcher) committed(ctx context.Context) (int64, error) {
	if w.admin == "" {
		return w.count(ctx)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.admin+"/metrics", nil)
	resp, err := w.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var total float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "sluice_sink_rows_written_total") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err == nil {
				total += v
				found = true
			}
		}
	}
	if !found {
		return 0, fmt.Errorf("no sluice_sink_rows_written_total at %s", w.admin)
	}
	return int64(total), nil
}

// scrape returns the values of the named metrics (summed over their labels) from the admin
// listener's /metrics.
func (w *watcher) scrape(ctx context.Context, names ...string) (map[string]float64, error) {
	if w.admin == "" {
		return nil, fmt.Errorf("no admin listener")
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.admin+"/metrics", nil)
	resp, err := w.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		for _, want := range names {
			if name != want {
				continue
			}
			if i := strings.LastIndexByte(line, ' '); i > 0 {
				if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
					out[name] += v
				}
			}
		}
	}
	return out, sc.Err()
}

// count counts the rows in the tables of the standard class: numbers, texts, booleans and
// locations.
func (w *watcher) count(ctx context.Context) (int64, error) {
	var n int64
	err := w.db.QueryRow(ctx, "SELECT (SELECT count(*) FROM measurements_standard) + (SELECT count(*) FROM text_standard)"+
		" + (SELECT count(*) FROM bool_standard) + (SELECT count(*) FROM location_standard)").Scan(&n)
	return n, err
}

// record adds a sample of the rows committed so far.
func (w *watcher) record(s sample) {
	w.mu.Lock()
	w.samples = append(w.samples, s)
	w.mu.Unlock()
}

// lastSample returns the latest committed-rows sample.
func (w *watcher) lastSample() (sample, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.samples) == 0 {
		return sample{}, false
	}
	return w.samples[len(w.samples)-1], true
}

func (w *watcher) close() { w.db.Close() }
