package sink

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// planStorage reads what the schema holds and plans what makes it match cfg.Storage: the class
// tables and their registry rows, the TimescaleDB features (or what was skipped without the
// extension), and the views when they do not cover every class the way they should.
func planStorage(ctx context.Context, conn querier, cfg TargetConfig) (*storagePlan, error) {
	schema := cfg.Schema
	registered, err := readClasses(ctx, conn, schema)
	if err != nil {
		return nil, err
	}
	tables, err := readNames(ctx, conn, "SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
	if err != nil {
		return nil, fmt.Errorf("migrate: list tables: %w", err)
	}
	p := &storagePlan{}
	known := slices.Clone(cfg.Storage.Classes)
	for _, c := range cfg.Storage.Classes {
		n := classNames{schema, c.Name}
		if !tables[n.table()] {
			p.add(createClassTable(schema, c.Name), fmt.Sprintf("created table %s for class %s", n.table(), c.Name))
		}
		if !slices.Contains(registered, c) {
			p.add(registerClass(schema, c), "")
		}
	}
	// Typed tables: every configured class has them; a class no longer configured keeps those
	// it has.
	typed := map[kind][]string{}
	for _, k := range typedKinds {
		for _, c := range cfg.Storage.Classes {
			n := typedNames{schema, c.Name, k}
			if !tables[n.table()] {
				p.add(createTypedTable(n), fmt.Sprintf("created table %s for the %s readings of class %s", n.table(), kinds[k].name, c.Name))
			}
			typed[k] = append(typed[k], c.Name)
		}
		for _, r := range registered {
			if _, ok := cfg.Storage.class(r.Name); !ok && tables[typedNames{schema, r.Name, k}.table()] {
				typed[k] = append(typed[k], r.Name)
			}
		}
	}
	for _, r := range registered {
		if _, ok := cfg.Storage.class(r.Name); !ok && tables["measurements_"+r.Name] {
			known = append(known, r)
			p.notes = append(p.notes, fmt.Sprintf("class %s is no longer configured: measurements_%s keeps its readings, its settings as last recorded, and stays in the views", r.Name, r.Name))
		}
	}
	installed, available, err := timescaleVersion(ctx, conn)
	if err != nil {
		return nil, err
	}
	caggs := false
	if installed != "" {
		st, err := readTimescale(ctx, conn, schema, installed)
		if err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
		caggs = timescalePlan(p, schema, known, st)
		typedTimescalePlan(p, schema, known, typed, st)
	} else {
		plainSkips(p, available, known)
	}
	names := make([]string, len(known))
	for i, c := range known {
		names[i] = c.Name
	}
	views := readingsViews(schema, names, caggs)
	current, err := viewsCurrent(ctx, conn, schema, views)
	if err != nil {
		return nil, err
	}
	if !current {
		how := "aggregating raw readings at query time"
		if caggs {
			how = "over the continuous aggregates"
		}
		views[0].report = fmt.Sprintf("views readings, readings_latest, readings_1h and readings_1d and functions readings_points and readings_step cover classes %s (readings_1h/1d %s)",
			strings.Join(names, ", "), how)
		p.steps = append(p.steps, views...)
	}
	tviews := typedViews(schema, typed)
	if current, err := typedViewsCurrent(ctx, conn, schema, tviews); err != nil {
		return nil, err
	} else if !current {
		tviews[0].report = "views readings_text, readings_bool and readings_location cover classes " + strings.Join(typed[kindText], ", ")
		p.steps = append(p.steps, tviews...)
	}
	return p, nil
}

// plainSkips says what a database without the timescaledb extension does not get.
func plainSkips(p *storagePlan, available string, classes []ClassConfig) {
	why := "the timescaledb extension is not installed in this database and the server does not offer it"
	if available != "" {
		why = fmt.Sprintf("the timescaledb extension is not installed in this database (the server offers %s: CREATE EXTENSION timescaledb, then run sluice migrate again)", available)
	}
	p.skipped = append(p.skipped, "hypertables, compression, retention and continuous aggregates: "+why)
	for _, c := range classes {
		var what []string
		what = append(what, fmt.Sprintf("chunk_interval %s (not partitioned)", c.ChunkInterval))
		if c.CompressAfter > 0 {
			what = append(what, fmt.Sprintf("compress_after %s (not compressed)", c.CompressAfter))
		}
		if c.Retention > 0 {
			what = append(what, fmt.Sprintf("retention %s (readings are kept until deleted)", c.Retention))
		}
		p.skipped = append(p.skipped, fmt.Sprintf("class %s: measurements_%s is a plain table; not applied: %s", c.Name, c.Name, strings.Join(what, ", ")))
	}
	p.skipped = append(p.skipped, "continuous aggregates: readings_1h and readings_1d are plain views aggregating raw readings at query time")
}

// readClasses returns the classes recorded in sluice_classes (none before migration 2).
func readClasses(ctx context.Context, conn querier, schema string) ([]ClassConfig, error) {
	var exists bool
	reg := pgx.Identifier{schema, "sluice_classes"}.Sanitize()
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", reg).Scan(&exists); err != nil || !exists {
		return nil, wrap("migrate: read classes", err)
	}
	rows, err := conn.Query(ctx, `SELECT name, extract(epoch FROM chunk_interval)::float8, extract(epoch FROM compress_after)::float8,
	extract(epoch FROM retention)::float8 FROM `+reg+` ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("migrate: read classes: %w", err)
	}
	var out []ClassConfig
	var c ClassConfig
	var chunk, compress, keep float64
	_, err = pgx.ForEachRow(rows, []any{&c.Name, &chunk, &compress, &keep}, func() error {
		c.ChunkInterval, c.CompressAfter, c.Retention = seconds(chunk), seconds(compress), seconds(keep)
		out = append(out, c)
		return nil
	})
	return out, wrap("migrate: read classes", err)
}

func readNames(ctx context.Context, conn querier, sql string, args ...any) (map[string]bool, error) {
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	var s string
	_, err = pgx.ForEachRow(rows, []any{&s}, func() error {
		out[s] = true
		return nil
	})
	return out, err
}

// typedViewsCurrent reports whether the typed views exist as steps would create them.
func typedViewsCurrent(ctx context.Context, conn querier, schema string, steps []step) (bool, error) {
	var views int
	var mark string
	err := conn.QueryRow(ctx, `SELECT
	(SELECT count(*) FROM pg_views WHERE schemaname = $1 AND viewname IN ('readings_text', 'readings_bool', 'readings_location')),
	coalesce(obj_description(to_regclass($2), 'pg_class'), '')`, schema, pgx.Identifier{schema, "readings_text"}.Sanitize()).Scan(&views, &mark)
	if err != nil {
		return false, fmt.Errorf("migrate: read typed views: %w", err)
	}
	return views == 3 && mark == viewsMark("typed views", steps[:len(steps)-1]), nil
}

// viewsCurrent reports whether the views and read functions exist as steps would create them:
// all four views are there and the readings view carries the fingerprint of steps.
func viewsCurrent(ctx context.Context, conn querier, schema string, steps []step) (bool, error) {
	var views, funcs int
	var mark string
	err := conn.QueryRow(ctx, `SELECT
	(SELECT count(*) FROM pg_views WHERE schemaname = $1 AND viewname IN ('readings', 'readings_latest', 'readings_1h', 'readings_1d')),
	(SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 AND p.proname IN ('readings_step', 'readings_points')),
	coalesce(obj_description(to_regclass($2), 'pg_class'), '')`, schema, pgx.Identifier{schema, "readings"}.Sanitize()).Scan(&views, &funcs, &mark)
	if err != nil {
		return false, fmt.Errorf("migrate: read views: %w", err)
	}
	return views == 4 && funcs == 2 && mark == viewsMark("views", steps[:len(steps)-1]), nil
}
