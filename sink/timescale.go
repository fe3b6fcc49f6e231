package sink

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// TimescaleDB versions Sluice generates SQL for. The statements use the names that exist
// across the whole range: create_hypertable with by_range (2.13+), ALTER TABLE … SET
// (timescaledb.compress…) and add_/remove_compression_policy (deprecated aliases of the
// columnstore API since 2.18, still present), add_/remove_retention_policy,
// add_/remove_continuous_aggregate_policy, CALL refresh_continuous_aggregate, and
// timescaledb_information.{hypertables,dimensions,jobs,continuous_aggregates}.
var (
	tsOldest = tsVersion{2, 13}
	tsNewest = tsVersion{2, 28}
)

type tsVersion struct{ major, minor int }

func (v tsVersion) less(o tsVersion) bool {
	return v.major < o.major || v.major == o.major && v.minor < o.minor
}

func (v tsVersion) String() string { return fmt.Sprintf("%d.%d", v.major, v.minor) }

// parseTSVersion reads "2.17.2" or "2.18.0-dev".
func parseTSVersion(s string) (tsVersion, error) {
	parts := strings.SplitN(s, ".", 3)
	if len(parts) < 2 {
		return tsVersion{}, fmt.Errorf("timescaledb version %q: want major.minor[.patch]", s)
	}
	maj, err1 := strconv.Atoi(parts[0])
	minStr, _, _ := strings.Cut(parts[1], "-")
	mnr, err2 := strconv.Atoi(minStr)
	if err1 != nil || err2 != nil {
		return tsVersion{}, fmt.Errorf("timescaledb version %q: want major.minor[.patch]", s)
	}
	return tsVersion{maj, mnr}, nil
}

// tsState is what a migration reads from a database with the extension before planning.
type tsState struct {
	version string // extversion, e.g. "2.17.2"
	license string // timescaledb.license: "timescale" (all features) or "apache" (hypertables only)
	tables  map[string]*tsTable
	caggs   map[string]*tsCagg
}

type tsTable struct {
	chunkInterval Period
	compressed    bool    // compression enabled (ALTER TABLE … SET (timescaledb.compress))
	compressAfter *Period // compression policy, nil when there is none
	retention     *Period // retention policy, nil when there is none
}

type tsCagg struct {
	materializedOnly bool
	refresh          *refreshPolicy // nil when there is none
}

// refreshPolicy is a continuous aggregate's refresh policy. A start of 0 is an unbounded
// window (start_offset NULL): every invalidated bucket is refreshed, however old.
type refreshPolicy struct{ start, end, schedule Period }

// refreshStart is the start_offset of a class's refresh policies. TimescaleDB logs every write
// below an aggregate's watermark as an invalidation, but a policy refreshes only the
// invalidations inside its window, and real-time aggregation answers from raw rows only above
// the watermark: a window of the last few days loses every reading written later than that
// (late, replayed, backfilled) from the aggregates for good. So the window is unbounded and
// the refresh recomputes exactly the invalidated buckets, however old. With retention it
// stops at the retention period instead: dropping chunks invalidates their range, and a
// refresh over it would empty the aggregates that are meant to outlive the raw rows.
func refreshStart(c ClassConfig) Period { return c.Retention }

// since renders the start of a refresh window start before now for SQL.
func (p refreshPolicy) since() string {
	if p.start == 0 {
		return "NULL"
	}
	return "now() - " + p.start.interval()
}

// window says what the policy refreshes: "all history" or "the last 30d".
func (p refreshPolicy) window() string {
	if p.start == 0 {
		return "all history"
	}
	return "the last " + p.start.String()
}

func (p refreshPolicy) String() string {
	return fmt.Sprintf("every %s over %s up to %s ago", p.schedule, p.window(), p.end)
}

// timescalePlan adds to p what TimescaleDB needs for classes: hypertables, compression,
// retention, continuous aggregates and refresh policies, each reconciled against what st says
// exists. It reports whether readings_1h/1d can use continuous aggregates.
func timescalePlan(p *storagePlan, schema string, classes []ClassConfig, st *tsState) (caggs bool) {
	v, err := parseTSVersion(st.version)
	if err != nil || v.less(tsOldest) {
		p.skipped = append(p.skipped, fmt.Sprintf("timescaledb features: the installed timescaledb %s is older than %s, the oldest version Sluice supports; "+
			"the class tables stay plain tables (ALTER EXTENSION timescaledb UPDATE, then run sluice migrate again)", st.version, tsOldest))
		return false
	}
	if tsNewest.less(v) {
		p.notes = append(p.notes, fmt.Sprintf("timescaledb %s is newer than %s, the newest version this SQL was checked against", st.version, tsNewest))
	} else {
		p.notes = append(p.notes, "timescaledb "+st.version)
	}
	full := st.license != "apache"
	if !full {
		p.skipped = append(p.skipped, "compression, retention and continuous aggregates: timescaledb.license is 'apache' (they need the community license 'timescale'); "+
			"readings_1h and readings_1d aggregate raw readings at query time")
	}
	for _, c := range classes {
		n := classNames{schema, c.Name}
		t := st.tables[n.table()]
		hypertable(p, n, c, t)
		if full {
			compression(p, n, c, t)
			retention(p, n, c, t)
			for _, b := range buckets {
				continuousAggregate(p, n, c, b, st.caggs[n.cagg(b)])
			}
		}
	}
	return full
}

// typedTimescalePlan adds to p what TimescaleDB needs for the typed tables (typed, by kind, the
// classes having one): hypertables with the chunk interval of their class, compression
// segmented by series_id and ordered by time (texts compress by dictionary, booleans and
// coordinates by their own algorithms, each series' rows together) and their class's retention.
// Typed values have no continuous aggregates: an average of texts means nothing.
func typedTimescalePlan(p *storagePlan, schema string, classes []ClassConfig, typed map[kind][]string, st *tsState) {
	if v, err := parseTSVersion(st.version); err != nil || v.less(tsOldest) {
		return // timescalePlan said why
	}
	full := st.license != "apache"
	for _, k := range typedKinds {
		for _, name := range typed[k] {
			i := slices.IndexFunc(classes, func(c ClassConfig) bool { return c.Name == name })
			if i < 0 {
				continue
			}
			c, n := classes[i], typedNames{schema, name, k}
			t := st.tables[n.table()]
			hypertable(p, n, c, t)
			if full {
				compression(p, n, c, t)
				retention(p, n, c, t)
			}
		}
	}
}

func hypertable(p *storagePlan, n relation, c ClassConfig, t *tsTable) {
	switch {
	case t == nil:
		p.add(fmt.Sprintf("SELECT create_hypertable(%s, by_range('time', %s), if_not_exists => true, migrate_data => true, create_default_indexes => false)",
			quoteLiteral(n.qtable()), c.ChunkInterval.interval()),
			fmt.Sprintf("%s is a hypertable (chunk interval %s)", n.table(), c.ChunkInterval))
	case t.chunkInterval != c.ChunkInterval:
		p.add(fmt.Sprintf("SELECT set_chunk_time_interval(%s, %s)", quoteLiteral(n.qtable()), c.ChunkInterval.interval()),
			fmt.Sprintf("changed the chunk interval of %s from %s to %s: chunks created from now on span %s, existing chunks keep their %s", n.table(), t.chunkInterval, c.ChunkInterval, c.ChunkInterval, t.chunkInterval))
	}
}

func compression(p *storagePlan, n relation, c ClassConfig, t *tsTable) {
	var have *Period
	if t != nil {
		have = t.compressAfter
	}
	if c.CompressAfter > 0 && (t == nil || !t.compressed) {
		p.add(fmt.Sprintf("ALTER TABLE %s SET (timescaledb.compress, timescaledb.compress_segmentby = 'series_id', timescaledb.compress_orderby = 'time DESC')", n.qtable()),
			fmt.Sprintf("%s compresses chunks segmented by series_id, ordered by time DESC", n.table()))
	}
	add := fmt.Sprintf("SELECT add_compression_policy(%s, compress_after => %s, if_not_exists => true)", quoteLiteral(n.qtable()), c.CompressAfter.interval())
	remove := fmt.Sprintf("SELECT remove_compression_policy(%s, if_exists => true)", quoteLiteral(n.qtable()))
	policy(p, "compression policy", n.table(), c.CompressAfter, have, add, remove)
}

func retention(p *storagePlan, n relation, c ClassConfig, t *tsTable) {
	var have *Period
	if t != nil {
		have = t.retention
	}
	add := fmt.Sprintf("SELECT add_retention_policy(%s, drop_after => %s, if_not_exists => true)", quoteLiteral(n.qtable()), c.Retention.interval())
	remove := fmt.Sprintf("SELECT remove_retention_policy(%s, if_exists => true)", quoteLiteral(n.qtable()))
	policy(p, "retention policy", n.table(), c.Retention, have, add, remove)
}

// policy reconciles a policy whose one setting is want (0: no policy) with have (nil: none).
// if_not_exists would silently keep a policy with other settings, so a different policy is
// removed and added again.
func policy(p *storagePlan, what, table string, want Period, have *Period, add, remove string) {
	switch {
	case have == nil && want > 0:
		p.add(add, fmt.Sprintf("%s of %s: after %s", what, table, want))
	case have != nil && want == 0:
		p.add(remove, fmt.Sprintf("removed the %s of %s (was after %s; the configuration sets none)", what, table, *have))
	case have != nil && *have != want:
		p.add(remove, fmt.Sprintf("replacing the %s of %s: after %s, was after %s", what, table, want, *have))
		p.add(add, "")
	}
}

func continuousAggregate(p *storagePlan, n classNames, c ClassConfig, b bucket, have *tsCagg) {
	name, q := n.cagg(b), n.qcagg(b)
	if have == nil {
		p.add(fmt.Sprintf(`CREATE MATERIALIZED VIEW IF NOT EXISTS %s
	WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
	SELECT series_id, time_bucket(%s, time) AS bucket,
		avg(value) AS avg, min(value) AS min, max(value) AS max, count(*) AS count,
		first(value, time) AS first, last(value, time) AS last
	FROM %s
	GROUP BY series_id, bucket
	WITH NO DATA`, q, b.width, n.qtable()), fmt.Sprintf("continuous aggregate %s (%s buckets of %s)", name, b.suffix, n.table()))
	} else if have.materializedOnly {
		p.add(fmt.Sprintf("ALTER MATERIALIZED VIEW %s SET (timescaledb.materialized_only = false)", q),
			fmt.Sprintf("%s answers with real-time aggregation (it was materialized only)", name))
	}
	want := refreshPolicy{refreshStart(c), b.end, b.schedule}
	start := "NULL"
	if want.start != 0 {
		start = want.start.interval()
	}
	add := fmt.Sprintf("SELECT add_continuous_aggregate_policy(%s, start_offset => %s, end_offset => %s, schedule_interval => %s, if_not_exists => true)",
		quoteLiteral(q), start, want.end.interval(), want.schedule.interval())
	// Materialize what the table already holds, or what a narrower policy left out, before the
	// policy: once a refresh has moved the watermark, real-time aggregation no longer covers
	// what lies below it. The refresh recomputes invalidated buckets only, so it is cheap on an
	// aggregate that is up to date. The policy is added last, so a migration interrupted in
	// between refreshes again.
	refresh := fmt.Sprintf("CALL refresh_continuous_aggregate(%s, %s, NULL)", quoteLiteral(q), want.since())
	switch {
	case have == nil || have.refresh == nil:
		p.add(refresh, "")
		p.add(add, fmt.Sprintf("refresh policy of %s: %s", name, want))
	case *have.refresh != want:
		p.add(fmt.Sprintf("SELECT remove_continuous_aggregate_policy(%s, if_exists => true)", quoteLiteral(q)),
			fmt.Sprintf("replacing the refresh policy of %s: %s, was %s", name, want, *have.refresh))
		p.add(refresh, fmt.Sprintf("refreshed %s over %s, so it holds what the old policy's window left out", name, want.window()))
		p.add(add, "")
	}
}

// readTimescale reads the hypertables, policies and continuous aggregates in schema.
func readTimescale(ctx context.Context, conn querier, schema, version string) (*tsState, error) {
	st := &tsState{version: version, tables: map[string]*tsTable{}, caggs: map[string]*tsCagg{}}
	if err := conn.QueryRow(ctx, "SELECT coalesce(current_setting('timescaledb.license', true), '')").Scan(&st.license); err != nil {
		return nil, fmt.Errorf("read timescaledb.license: %w", err)
	}
	rows, err := conn.Query(ctx, `SELECT h.hypertable_name, h.compression_enabled, coalesce(extract(epoch FROM d.time_interval)::float8, 0)
FROM timescaledb_information.hypertables h
LEFT JOIN timescaledb_information.dimensions d
	ON d.hypertable_schema = h.hypertable_schema AND d.hypertable_name = h.hypertable_name AND d.dimension_number = 1
WHERE h.hypertable_schema = $1`, schema)
	if err != nil {
		return nil, fmt.Errorf("read hypertables: %w", err)
	}
	var name string
	var compressed bool
	var secs float64
	_, err = pgx.ForEachRow(rows, []any{&name, &compressed, &secs}, func() error {
		st.tables[name] = &tsTable{compressed: compressed, chunkInterval: seconds(secs)}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read hypertables: %w", err)
	}
	// Offsets are read as seconds; one we cannot read (an integer, NULL for unbounded, a
	// created_before policy) is -1 second, which differs from ours and gets the policy replaced.
	var proc string
	rows, err = conn.Query(ctx, `SELECT hypertable_name, proc_name,
	coalesce(extract(epoch FROM (CASE WHEN proc_name = 'policy_compression' THEN config->>'compress_after' ELSE config->>'drop_after' END)::interval)::float8, -1)
FROM timescaledb_information.jobs
WHERE hypertable_schema = $1 AND proc_name IN ('policy_compression', 'policy_retention')`, schema)
	if err != nil {
		return nil, fmt.Errorf("read policies: %w", err)
	}
	_, err = pgx.ForEachRow(rows, []any{&name, &proc, &secs}, func() error {
		if t := st.tables[name]; t != nil {
			d := seconds(secs)
			if proc == "policy_compression" {
				t.compressAfter = &d
			} else {
				t.retention = &d
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read policies: %w", err)
	}
	rows, err = conn.Query(ctx, `SELECT c.view_name, c.materialized_only, j.job_id IS NOT NULL,
	-- A NULL start_offset (an unbounded window) reads as 0.
	coalesce(extract(epoch FROM (j.config->>'start_offset')::interval)::float8, 0),
	coalesce(extract(epoch FROM (j.config->>'end_offset')::interval)::float8, -1),
	coalesce(extract(epoch FROM j.schedule_interval)::float8, -1)
FROM timescaledb_information.continuous_aggregates c
LEFT JOIN timescaledb_information.jobs j
	ON j.proc_name = 'policy_refresh_continuous_aggregate'
	-- The jobs view names the materialization hypertable in older versions and the view itself
	-- in newer ones (2.23 does).
	AND (j.hypertable_schema = c.materialization_hypertable_schema AND j.hypertable_name = c.materialization_hypertable_name
		OR j.hypertable_schema = c.view_schema AND j.hypertable_name = c.view_name)
WHERE c.view_schema = $1`, schema)
	if err != nil {
		return nil, fmt.Errorf("read continuous aggregates: %w", err)
	}
	var matOnly, hasJob bool
	var start, end float64
	_, err = pgx.ForEachRow(rows, []any{&name, &matOnly, &hasJob, &start, &end, &secs}, func() error {
		c := &tsCagg{materializedOnly: matOnly}
		if hasJob {
			c.refresh = &refreshPolicy{seconds(start), seconds(end), seconds(secs)}
		}
		st.caggs[name] = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read continuous aggregates: %w", err)
	}
	return st, nil
}

func seconds(s float64) Period { return Period(time.Duration(s * float64(time.Second))) }
