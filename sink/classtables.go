package sink

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// A step is one statement of a storage plan. Steps run one at a time outside any transaction
// block (continuous aggregates cannot be created with data or refreshed inside one); each is
// idempotent on its own.
type step struct {
	sql    string
	report string // what the step changes, for `sluice migrate` and the log; "" reports nothing
}

// storagePlan is what a migration does beyond the versioned steps: class tables, TimescaleDB
// features and the views, plus what it skipped and why.
type storagePlan struct {
	steps   []step
	skipped []string
	notes   []string // facts worth printing that change nothing (versions, kept classes)
}

func (p *storagePlan) add(sql, report string) { p.steps = append(p.steps, step{sql, report}) }

// bucket is one continuous-aggregate granularity.
type bucket struct {
	suffix   string // table suffix and view name suffix: 1h, 1d
	width    string // SQL interval
	size     time.Duration
	unit     string // date_trunc unit for plain PostgreSQL
	end      Period // refresh policy end_offset
	schedule Period // refresh policy schedule_interval
}

var buckets = []bucket{
	{"1h", "INTERVAL '1 hour'", time.Hour, "hour", Period(time.Hour), Period(30 * time.Minute)},
	{"1d", "INTERVAL '1 day'", day, "day", Period(time.Hour), Period(time.Hour)},
}

const day = 24 * time.Hour

// names of one class's objects, schema-qualified and quoted.
type classNames struct{ schema, class string }

func (n classNames) table() string { return "measurements_" + n.class }
func (n classNames) qtable() string {
	return pgx.Identifier{n.schema, n.table()}.Sanitize()
}
func (n classNames) cagg(b bucket) string { return n.table() + "_" + b.suffix }
func (n classNames) qcagg(b bucket) string {
	return pgx.Identifier{n.schema, n.cagg(b)}.Sanitize()
}

// createClassTable returns the statements creating a class's narrow table.
func createClassTable(schema, class string) string {
	n := classNames{schema, class}
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s (
	time      timestamptz      NOT NULL,
	series_id bigint           NOT NULL,
	value     double precision NOT NULL,
	PRIMARY KEY (series_id, time)
);
CREATE INDEX IF NOT EXISTS %[2]s ON %[1]s (time DESC)`, n.qtable(), pgx.Identifier{n.table() + "_time_idx"}.Sanitize())
}

// registerClass records a class and its settings in sluice_classes, so that the views keep
// covering its table after it leaves the configuration.
func registerClass(schema string, c ClassConfig) string {
	return fmt.Sprintf(`INSERT INTO %s (name, chunk_interval, compress_after, retention)
VALUES (%s, %s, %s, %s)
ON CONFLICT (name) DO UPDATE SET chunk_interval = EXCLUDED.chunk_interval, compress_after = EXCLUDED.compress_after,
	retention = EXCLUDED.retention, updated_at = now()
WHERE (sluice_classes.chunk_interval, sluice_classes.compress_after, sluice_classes.retention)
	IS DISTINCT FROM (EXCLUDED.chunk_interval, EXCLUDED.compress_after, EXCLUDED.retention)`,
		pgx.Identifier{schema, "sluice_classes"}.Sanitize(), quoteLiteral(c.Name),
		c.ChunkInterval.interval(), c.CompressAfter.interval(), c.Retention.interval())
}

// unionAll selects cols from one relation per class, glued with UNION ALL.
func unionAll(classes []string, cols string, rel func(string) string) string {
	parts := make([]string, len(classes))
	for i, c := range classes {
		parts[i] = "SELECT " + cols + " FROM " + rel(c)
	}
	return strings.Join(parts, "\n\t\tUNION ALL ")
}

// readingsViews returns the stable query interface over every class: readings (raw),
// readings_latest, readings_1h / readings_1d and the read functions (readFunctions) — over the continuous aggregates when
// caggs is true, else aggregating raw rows at query time. Column names and types are the
// same either way, so CREATE OR REPLACE moves a view from one to the other.
func readingsViews(schema string, classes []string, caggs bool) []step {
	q := func(name string) string { return pgx.Identifier{schema, name}.Sanitize() }
	table := func(c string) string { return classNames{schema, c}.qtable() }
	series := q("series")
	steps := []step{
		{sql: fmt.Sprintf(`CREATE OR REPLACE VIEW %s AS
	SELECT m.time, s.tenant, s.device, s.metric, m.value, s.unit
	FROM (%s) m
	JOIN %s s ON s.id = m.series_id`, q("readings"), unionAll(classes, "time, series_id, value", table), series)},
		{sql: fmt.Sprintf(`CREATE OR REPLACE VIEW %s AS
	SELECT l.time, s.tenant, s.device, s.metric, l.value, s.unit
	FROM %s l
	JOIN %s s ON s.id = l.series_id`, q("readings_latest"), q("latest"), series)},
	}
	for _, b := range buckets {
		view := q("readings_" + b.suffix)
		if !caggs {
			// Grouped by every series column, so that filters on tenant, device and metric are
			// pushed below the aggregation and reach the series index before any raw row is read.
			steps = append(steps, step{sql: fmt.Sprintf(`CREATE OR REPLACE VIEW %s AS
	SELECT s.tenant, s.device, s.metric, date_trunc('%s', m.time, 'UTC') AS bucket,
		avg(m.value) AS avg, min(m.value) AS min, max(m.value) AS max, count(*) AS count,
		(array_agg(m.value ORDER BY m.time))[1] AS first, (array_agg(m.value ORDER BY m.time DESC))[1] AS last, s.unit
	FROM (%s) m
	JOIN %s s ON s.id = m.series_id
	GROUP BY s.id, s.tenant, s.device, s.metric, s.unit, 4`, view, b.unit, unionAll(classes, "time, series_id, value", table), series)})
			continue
		}
		// Each series reaches into each class's aggregate with its id (LATERAL): a filter on
		// tenant, device and metric picks the series by index first, and the id then reaches the
		// aggregate's (series_id, bucket) index and its real-time part's raw-row index. A join
		// above the union would scan every series' buckets: an aggregate is a view that the
		// planner cannot hand a join key to.
		inner := unionAll(classes, "bucket, avg, min, max, count, first, last", func(c string) string {
			return classNames{schema, c}.qcagg(b) + " c WHERE c.series_id = s.id"
		})
		steps = append(steps, step{sql: fmt.Sprintf(`CREATE OR REPLACE VIEW %s AS
	SELECT s.tenant, s.device, s.metric, a.bucket, a.avg, a.min, a.max, a.count, a.first, a.last, s.unit
	FROM %s s
	CROSS JOIN LATERAL (%s) a`, view, series, inner)})
	}
	steps = append(steps, readFunctions(schema, classes, caggs)...)
	return append(steps, step{sql: fmt.Sprintf("COMMENT ON VIEW %s IS %s", q("readings"), quoteLiteral(viewsMark("views", steps)))})
}

// viewsMark fingerprints the statements that create a set of views (and read functions),
// named by what. It is kept as the comment of the set's first view, so that a migration
// recreates them exactly when what it would create differs from what the schema has (new
// classes, aggregates, a new shape).
func viewsMark(what string, steps []step) string {
	h := sha256.New()
	for _, s := range steps {
		h.Write([]byte(s.sql))
	}
	return fmt.Sprintf("sluice %s %x", what, h.Sum(nil)[:8])
}
