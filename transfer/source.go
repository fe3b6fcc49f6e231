package transfer

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluice-iot/sluice"
)

// Source is where readings are read from: a Sluice schema (plain PostgreSQL or TimescaleDB,
// every class table) or a legacy query. It is safe for concurrent use; Close releases it.
type Source struct {
	pool   *pgxpool.Pool
	schema string     // Sluice schema; "" for a query
	tables []srcTable // class tables of a Sluice schema: numbers, then typed values
	query  string     // legacy query
	unit   bool       // the query returns a unit column
	desc   string
	ident  string // what identifies the source across runs (no credentials)
}

// srcTable is one class table of a Sluice schema and the type of the values it holds.
type srcTable struct {
	name string // qualified
	typ  sluice.ValueType
}

// tablePrefixes are the table name prefixes of each value type (docs/storage.md).
var tablePrefixes = []struct {
	prefix string
	typ    sluice.ValueType
}{{"measurements_", sluice.TypeNumber}, {"text_", sluice.TypeText}, {"bool_", sluice.TypeBool}, {"location_", sluice.TypeLocation}}

// SourceConfig names a source: a database and either a Sluice schema or a legacy query.
type SourceConfig struct {
	URL    string
	Schema string // Sluice schema (default public); ignored with Query
	// Query is a legacy query returning time, tenant, device, metric, value and optionally
	// unit; it must not end with a semicolon or ORDER BY (it is wrapped as a subquery).
	Query string
	// App is the application_name the connections show in pg_stat_activity.
	App string
}

// OpenSource connects to a source and checks what it holds: the class tables of the schema, or
// the columns the query returns.
func OpenSource(ctx context.Context, cfg SourceConfig) (*Source, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("source url: %w", err)
	}
	if cfg.Schema == "" {
		cfg.Schema = "public"
	}
	pc.MaxConns = 2
	pc.ConnConfig.RuntimeParams["application_name"] = cfg.App
	// A timestamp without time zone in a legacy table is read as UTC.
	pc.ConnConfig.RuntimeParams["timezone"] = "UTC"
	if cfg.Query == "" {
		pc.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{cfg.Schema}.Sanitize() + ", public"
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", where(pc.ConnConfig.Config.Host, pc.ConnConfig.Database), err)
	}
	s := &Source{pool: pool, query: strings.TrimSpace(cfg.Query)}
	at := where(pc.ConnConfig.Host, pc.ConnConfig.Database)
	if s.query != "" {
		s.desc, s.ident = "query on "+at, at+"\x00"+s.query
		err = s.checkQuery(ctx)
	} else {
		s.schema = cfg.Schema
		s.desc = fmt.Sprintf("schema %s on %s", cfg.Schema, at)
		s.ident = at + "\x00" + cfg.Schema
		err = s.readClasses(ctx)
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

func where(host, db string) string { return host + "/" + url.PathEscape(db) }

// Close releases the source's connections.
func (s *Source) Close() { s.pool.Close() }

// String describes the source for people: "schema public on 127.0.0.1/old".
func (s *Source) String() string { return s.desc }

// readClasses finds the class tables of a Sluice schema: measurements_<class> and, in a
// schema that has typed values (migration 3), text_, bool_ and location_<class>.
func (s *Source) readClasses(ctx context.Context) error {
	// The class registry (sluice_classes) names every class table, configured or not; a schema
	// from before it has measurements_standard alone.
	var registry bool
	if err := s.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", pgx.Identifier{s.schema, "sluice_classes"}.Sanitize()).Scan(&registry); err != nil {
		return fmt.Errorf("read the class tables of schema %s: %w", s.schema, err)
	}
	classes := "SELECT 'standard'"
	if registry {
		classes = "SELECT name FROM " + pgx.Identifier{s.schema, "sluice_classes"}.Sanitize()
	}
	prefixes := make([]string, len(tablePrefixes))
	for i, p := range tablePrefixes {
		prefixes[i] = p.prefix
	}
	rows, err := s.pool.Query(ctx, `SELECT c.relname::text, p.n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	JOIN unnest($2::text[]) WITH ORDINALITY AS p(prefix, n) ON true
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname IN (SELECT p.prefix || name FROM (`+classes+`) k(name))
	AND EXISTS (SELECT 1 FROM pg_class sr WHERE sr.relnamespace = n.oid AND sr.relname = 'series')
ORDER BY 2, 1`, s.schema, prefixes)
	if err != nil {
		return fmt.Errorf("read the class tables of schema %s: %w", s.schema, err)
	}
	var name string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error {
		s.tables = append(s.tables, srcTable{name: pgx.Identifier{s.schema, name}.Sanitize(), typ: tablePrefixes[n-1].typ})
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the class tables of schema %s: %w", s.schema, err)
	}
	if len(s.tables) == 0 || s.tables[0].typ != sluice.TypeNumber {
		return fmt.Errorf("%s holds no Sluice readings (no series and measurements_* tables); for another layout use --from-query", s.desc)
	}
	return nil
}

// ErrQueryColumns is a legacy query that does not return the columns a backfill needs.
var ErrQueryColumns = errors.New("the query must return the columns time, tenant, device, metric, value and optionally unit")

// checkQuery checks the columns of the legacy query and their types.
func (s *Source) checkQuery(ctx context.Context) error {
	if strings.HasSuffix(s.query, ";") {
		return fmt.Errorf("--from-query: remove the trailing semicolon (the query is wrapped as a subquery)")
	}
	rows, err := s.pool.Query(ctx, "SELECT * FROM ("+s.query+") src LIMIT 0")
	if err != nil {
		return fmt.Errorf("--from-query: %w", err)
	}
	fields := rows.FieldDescriptions()
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("--from-query: %w", err)
	}
	types := map[string]uint32{}
	var problems []string
	for _, f := range fields {
		switch f.Name {
		case "time", "tenant", "device", "metric", "value", "unit":
			if _, dup := types[f.Name]; dup {
				problems = append(problems, "column "+f.Name+" appears twice")
			}
			types[f.Name] = f.DataTypeOID
		default:
			problems = append(problems, fmt.Sprintf("unexpected column %q", f.Name))
		}
	}
	for _, c := range []string{"time", "tenant", "device", "metric", "value"} {
		if _, ok := types[c]; !ok {
			problems = append(problems, "column "+c+" is missing")
		}
	}
	if oid, ok := types["time"]; ok && oid != pgtype.TimestamptzOID && oid != pgtype.TimestampOID {
		problems = append(problems, "time must be a timestamptz or timestamp (cast it: … AS time)")
	}
	for _, c := range []string{"tenant", "device", "metric", "unit"} {
		if oid, ok := types[c]; ok && oid != pgtype.TextOID && oid != pgtype.VarcharOID && oid != pgtype.BPCharOID && oid != pgtype.NameOID {
			problems = append(problems, fmt.Sprintf("%s must be text (cast it: %s::text AS %s)", c, c, c))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("--from-query: %w: %s", ErrQueryColumns, strings.Join(problems, "; "))
	}
	_, s.unit = types["unit"]
	return nil
}

// Range bounds what is read: readings at or after Since (zero: all), before Until (zero: all),
// of Tenant ("" all).
type Range struct {
	Since, Until time.Time
	Tenant       string
}

// position is where a copy stands: the time and tie-breaking key of the last row copied. A
// Sluice schema's key is the source's series id; a query's is tenant, device and metric.
type position struct {
	time  pgtype.Timestamptz // !Valid: nothing copied yet
	key   []string
	first bool // nothing copied yet: the first row may equal the start
}

// srcRow is one reading read from a source, with what makes it unwritable before any check
// (a NULL, an infinite time) and its position. Its value is, by typ, a number in value, a
// text in text, a boolean in flag or a location in lat, lon and alt.
type srcRow struct {
	time                         pgtype.Timestamptz
	tenant, device, metric, unit pgtype.Text
	typ                          sluice.ValueType
	value                        pgtype.Float8
	text                         pgtype.Text
	flag                         pgtype.Bool
	lat, lon, alt                pgtype.Float8
	key                          []string
}

func lowerBound(r Range) pgtype.Timestamptz {
	if r.Since.IsZero() {
		return pgtype.Timestamptz{Valid: true, InfinityModifier: pgtype.NegativeInfinity}
	}
	return pgtype.Timestamptz{Time: r.Since, Valid: true}
}

// upperBound is NULL for no bound: a bound of infinity would leave rows at infinity out.
func upperBound(r Range) pgtype.Timestamptz {
	if r.Until.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: r.Until, Valid: true}
}

// relation is the rows of every class table of a Sluice schema as (time, series_id, type,
// value, text, flag, lat, lon, alt), the columns a row's type does not use NULL.
func (s *Source) relation() string { return relationOf(s.tables) }

func relationOf(tables []srcTable) string {
	parts := make([]string, len(tables))
	for i, t := range tables {
		var cols string
		switch t.typ {
		case sluice.TypeNumber:
			cols = "value, NULL::text, NULL::boolean, NULL::float8, NULL::float8, NULL::float8"
		case sluice.TypeText:
			cols = "NULL::float8, value, NULL::boolean, NULL::float8, NULL::float8, NULL::float8"
		case sluice.TypeBool:
			cols = "NULL::float8, NULL::text, value, NULL::float8, NULL::float8, NULL::float8"
		case sluice.TypeLocation:
			cols = "NULL::float8, NULL::text, NULL::boolean, latitude, longitude, altitude"
		}
		parts[i] = "SELECT time, series_id, '" + string(t.typ) + "'::text AS type, " + cols + " FROM " + t.name
	}
	return "(" + strings.Join(parts, " UNION ALL ") + ") m(time, series_id, type, value, text, flag, lat, lon, alt)"
}

// typedBefore reports whether cp, a copy of r begun by a Sluice that copied numbers only
// (cp.typed false), has passed typed readings of a Sluice schema (every one in r when
// finished). It is false for no checkpoint or a typed one.
func (s *Source) typedBefore(ctx context.Context, r Range, cp *checkpoint) (bool, error) {
	if cp == nil || cp.typed || !cp.finished && !cp.pos.time.Valid {
		return false, nil
	}
	end := upperBound(r)
	if !cp.finished {
		end = cp.pos.time
	}
	for _, t := range s.tables {
		if t.typ == sluice.TypeNumber {
			continue
		}
		var found bool
		err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+t.name+` m WHERE m.time >= $1 AND (m.time <= $2 OR $2::timestamptz IS NULL)
	AND (m.time < $3 OR $3::timestamptz IS NULL)
	AND ($4::text = '' OR m.series_id IN (SELECT id FROM `+pgx.Identifier{s.schema, "series"}.Sanitize()+` WHERE tenant = $4::text)))`,
			lowerBound(r), end, upperBound(r), r.Tenant).Scan(&found)
		if err != nil {
			return false, fmt.Errorf("look for typed readings in %s: %w", t.name, err)
		}
		if found {
			return true, nil
		}
	}
	return false, nil
}

// chunk reads up to n rows after pos in (time, key) order, at or after lower and before hi
// (NULL: no bound; the range's own end is the caller's to apply). Rows whose time is NULL are
// never returned (they have no place in the order; see nullTimes).
func (s *Source) chunk(ctx context.Context, r Range, pos position, lower, hi pgtype.Timestamptz, n int) ([]srcRow, error) {
	after := pgtype.Timestamptz{Valid: true, InfinityModifier: pgtype.NegativeInfinity}
	if pos.time.Valid && !pos.first {
		after = pos.time
	}
	var sql string
	var args []any
	if s.schema != "" {
		sid := int64(-1)
		if !pos.first && len(pos.key) == 1 {
			sid, _ = strconv.ParseInt(pos.key[0], 10, 64)
		}
		sql = `SELECT m.time, s.tenant, s.device, s.metric, s.unit, m.series_id::text, m.type, m.value, m.text, m.flag, m.lat, m.lon, m.alt
FROM ` + s.relation() + ` JOIN ` + pgx.Identifier{s.schema, "series"}.Sanitize() + ` s ON s.id = m.series_id
WHERE m.time >= $1 AND (m.time, m.series_id) > ($6::timestamptz, $2::bigint) AND (m.time < $3 OR $3::timestamptz IS NULL)
	AND ($4::text = '' OR s.tenant = $4::text)
ORDER BY m.time, m.series_id LIMIT $5`
		args = []any{lower, sid, hi, r.Tenant, n, after}
	} else {
		unit := "NULL::text"
		if s.unit {
			unit = "src.unit::text"
		}
		key := []string{"", "", ""}
		if !pos.first && len(pos.key) == 3 {
			key = pos.key
		}
		// The keyset runs on the query's own columns, so that an index on its time column
		// serves it; text keys compare bytewise whatever the collations.
		sql = `SELECT src.time::timestamptz, src.tenant::text, src.device::text, src.metric::text, ` + unit + `, NULL::text, '', src.value::float8,
	NULL::text, NULL::boolean, NULL::float8, NULL::float8, NULL::float8
FROM (` + s.query + `) src
WHERE src.time >= $1::timestamptz AND (src.time < $3::timestamptz OR $3::timestamptz IS NULL) AND ($4::text = '' OR src.tenant = $4::text)
	AND ($6 OR (src.time, src.tenant COLLATE "C", src.device COLLATE "C", src.metric COLLATE "C") > ($9::timestamptz, $2::text, $7::text, $8::text))
ORDER BY src.time, src.tenant COLLATE "C", src.device COLLATE "C", src.metric COLLATE "C" LIMIT $5`
		args = []any{lower, key[0], hi, r.Tenant, n, pos.first, key[1], key[2], after}
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.desc, err)
	}
	out := make([]srcRow, 0, n)
	var x srcRow
	var sid pgtype.Text
	var typ string
	_, err = pgx.ForEachRow(rows, []any{&x.time, &x.tenant, &x.device, &x.metric, &x.unit, &sid, &typ, &x.value, &x.text, &x.flag, &x.lat, &x.lon, &x.alt}, func() error {
		x.typ = sluice.ValueType(typ)
		if sid.Valid {
			x.key = []string{sid.String}
		} else {
			x.key = []string{x.tenant.String, x.device.String, x.metric.String}
		}
		out = append(out, x)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.desc, err)
	}
	return out, nil
}

// nullTimes calls fn for every row of a legacy query whose time is NULL, when r has no time
// bounds (a NULL time is in no range).
func (s *Source) nullTimes(ctx context.Context, r Range, fn func(srcRow) error) error {
	if s.query == "" || !r.Since.IsZero() || !r.Until.IsZero() {
		return nil
	}
	unit := "NULL::text"
	if s.unit {
		unit = "src.unit::text"
	}
	rows, err := s.pool.Query(ctx, `SELECT src.tenant::text, src.device::text, src.metric::text, `+unit+`, src.value::float8
FROM (`+s.query+`) src WHERE src.time IS NULL AND ($1::text = '' OR src.tenant = $1::text)`, r.Tenant)
	if err != nil {
		return fmt.Errorf("read %s: %w", s.desc, err)
	}
	var x srcRow
	_, err = pgx.ForEachRow(rows, []any{&x.tenant, &x.device, &x.metric, &x.unit, &x.value}, func() error { return fn(x) })
	if err != nil {
		return fmt.Errorf("read %s: %w", s.desc, err)
	}
	return nil
}

// span returns the first and last time of the readings in r (zero times when there are none),
// per class table so that each reads its time index.
func (s *Source) span(ctx context.Context, r Range) (first, last time.Time, err error) {
	var sql string
	if s.schema != "" {
		parts := make([]string, len(s.tables))
		for i, t := range s.tables {
			parts[i] = "SELECT min(time) AS lo, max(time) AS hi FROM " + t.name + " WHERE time >= $1 AND (time < $2 OR $2::timestamptz IS NULL)"
		}
		sql = "SELECT min(lo), max(hi) FROM (" + strings.Join(parts, " UNION ALL ") + ") x"
	} else {
		sql = "SELECT min(src.time)::timestamptz, max(src.time)::timestamptz FROM (" + s.query + ") src WHERE src.time >= $1::timestamptz AND (src.time < $2::timestamptz OR $2::timestamptz IS NULL)"
	}
	var lo, hi pgtype.Timestamptz
	if err := s.pool.QueryRow(ctx, sql, lowerBound(r), upperBound(r)).Scan(&lo, &hi); err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("read the time span of %s: %w", s.desc, err)
	}
	return finite(lo), finite(hi), nil
}

func finite(t pgtype.Timestamptz) time.Time {
	if !t.Valid || t.InfinityModifier != pgtype.Finite {
		return time.Time{}
	}
	return t.Time
}

// estimate returns the planner's estimate of the rows in r (cheap; no scan).
func (s *Source) estimate(ctx context.Context, r Range) (int64, error) {
	var sql string
	if s.schema != "" {
		// An empty typed table the planner has never analyzed counts as ten pages of rows:
		// leave the empty ones out.
		tables := make([]srcTable, 0, len(s.tables))
		for _, t := range s.tables {
			if t.typ != sluice.TypeNumber {
				var rows bool
				if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+t.name+")").Scan(&rows); err != nil {
					return 0, fmt.Errorf("estimate the rows of %s: %w", s.desc, err)
				}
				if !rows {
					continue
				}
			}
			tables = append(tables, t)
		}
		sql = "SELECT 1 FROM " + relationOf(tables) + " WHERE m.time >= $1 AND (m.time < $2 OR $2::timestamptz IS NULL)"
	} else {
		sql = "SELECT 1 FROM (" + s.query + ") src WHERE src.time >= $1::timestamptz AND (src.time < $2::timestamptz OR $2::timestamptz IS NULL)"
	}
	var plan []map[string]any
	if err := s.pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+sql, lowerBound(r), upperBound(r)).Scan(&plan); err != nil {
		return 0, fmt.Errorf("estimate the rows of %s: %w", s.desc, err)
	}
	if len(plan) > 0 {
		if p, ok := plan[0]["Plan"].(map[string]any); ok {
			if n, ok := p["Plan Rows"].(float64); ok {
				return int64(n), nil
			}
		}
	}
	return 0, nil
}
