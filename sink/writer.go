package sink

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluice-iot/sluice"
)

// row is one reading on its way to the database. A number or boolean is in value (1 or 0),
// a text in text, a location in loc.
type row struct {
	key   seriesKey
	unit  string
	time  time.Time
	value float64
	text  string
	loc   *sluice.Location
	kind  kind
}

type seriesKey struct{ tenant, device, metric string }

// seriesRef is what the writer knows of a series: its id, the index of its class and the kind
// of value it was created for.
type seriesRef struct {
	id    int64
	class int
	kind  kind
}

// stageTable is the per-connection temporary table batches are copied into before the merge.
const stageTable = "sluice_stage"

// maxCachedSeries bounds the series id cache; past it the cache starts afresh.
const maxCachedSeries = 1 << 20

// writer writes batches of rows to one PostgreSQL database in the series model: each row's
// series is resolved (in bulk, then cached) to an id and a class, the rows are copied into a
// staging table and merged into their class's table, and the latest table is moved forward in
// the same transaction. It is safe for concurrent use.
type writer struct {
	pool    *pgxpool.Pool
	classes *classifier
	// Qualified table names: writes never depend on the search path.
	seriesTable, latest, devices string
	tables                       []string             // measurements table by class index
	typedTables                  [][len(kinds)]string // typed tables by class index and kind

	mu     sync.Mutex
	series map[seriesKey]seriesRef
}

// newPool builds (without connecting) a pool whose connections use schema and own a staging
// table.
func newPool(url, schema string, maxConns int32) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database_url: %w", err)
	}
	pc.MaxConns = maxConns
	// public stays on the path: extensions such as timescaledb install their functions there.
	pc.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize() + ", public"
	pc.ConnConfig.RuntimeParams["application_name"] = "sluice"
	pc.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "CREATE TEMP TABLE IF NOT EXISTS "+stageTable+
			" (time timestamptz, series_id bigint, value double precision, class smallint) ON COMMIT DELETE ROWS;\n"+createTypedStage)
		return err
	}
	return pgxpool.NewWithConfig(context.Background(), pc)
}

// newWriter builds the writer of schema; storage must be valid.
func newWriter(pool *pgxpool.Pool, schema string, storage StorageConfig) *writer {
	w := &writer{
		pool:        pool,
		classes:     newClassifier(storage),
		seriesTable: pgx.Identifier{schema, "series"}.Sanitize(),
		latest:      pgx.Identifier{schema, "latest"}.Sanitize(),
		devices:     pgx.Identifier{schema, "devices"}.Sanitize(),
		series:      map[seriesKey]seriesRef{},
	}
	for _, name := range w.classes.names {
		w.tables = append(w.tables, classNames{schema, name}.qtable())
		var typed [len(kinds)]string
		for _, k := range typedKinds {
			typed[k] = typedNames{schema, name, k}.qtable()
		}
		w.typedTables = append(w.typedTables, typed)
	}
	return w
}

// write stores rows in one transaction: COPY into the staging table, merge into each class's
// table skipping rows already there, and move latest forward for every series whose newest row
// is newer than what latest holds. It returns how many rows were new.
func (w *writer) write(ctx context.Context, rows []row) (int64, error) {
	return w.writeWith(ctx, rows, nil)
}

// writeWith is write that also updates the device inventory with inv (when not nil and not
// empty) in the same transaction.
func (w *writer) writeWith(ctx context.Context, rows []row, inv *inventory) (int64, error) {
	refs, err := w.seriesIDs(ctx, rows)
	if err != nil {
		return 0, err
	}
	var inserted int64
	err = pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		if len(rows) > 0 {
			if inserted, err = w.merge(ctx, tx, rows, refs); err != nil {
				return err
			}
		}
		if inv != nil && inv.len() > 0 {
			return inv.upsert(ctx, tx, w.devices)
		}
		return nil
	})
	return inserted, err
}

// merge is the idempotent step of write inside tx: rows (whose series refs are resolved) are
// copied into the staging table, inserted into their classes' tables where they are not yet,
// and latest moves forward. The staging rows stay until the transaction ends (or the caller
// empties the table); it returns how many rows were new.
func (w *writer) merge(ctx context.Context, tx pgx.Tx, rows []row, refs []seriesRef) (int64, error) {
	typed, err := checkKinds(rows, refs)
	if err != nil {
		return 0, err
	}
	var inserted int64
	if typed > 0 {
		n, err := w.mergeTyped(ctx, tx, rows, refs, typed)
		if err != nil {
			return 0, err
		}
		inserted += n
		if typed == len(rows) {
			return inserted, nil
		}
		rows, refs = numericRows(rows, refs, typed)
	}
	used := make([]bool, len(w.tables))
	classes := 0
	for _, r := range refs {
		if !used[r.class] {
			used[r.class] = true
			classes++
		}
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{stageTable}, []string{"time", "series_id", "value", "class"},
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			return []any{rows[i].time, refs[i].id, rows[i].value, int16(refs[i].class)}, nil
		}))
	if err != nil {
		return 0, fmt.Errorf("copy %d rows: %w", len(rows), err)
	}
	// Rows go in key order so that concurrent writers take row locks in the same order.
	for c, ok := range used {
		if !ok {
			continue
		}
		where := ""
		if classes > 1 {
			where = fmt.Sprintf(" WHERE class = %d", c)
		}
		tag, err := tx.Exec(ctx, "INSERT INTO "+w.tables[c]+" (time, series_id, value) SELECT time, series_id, value FROM "+
			stageTable+where+" ORDER BY series_id, time ON CONFLICT DO NOTHING")
		if err != nil {
			return 0, fmt.Errorf("merge %d rows into %s: %w", len(rows), w.tables[c], err)
		}
		inserted += tag.RowsAffected()
	}
	_, err = tx.Exec(ctx, "INSERT INTO "+w.latest+" AS l (series_id, time, value)"+
		" SELECT DISTINCT ON (series_id) series_id, time, value FROM "+stageTable+" ORDER BY series_id, time DESC"+
		" ON CONFLICT (series_id) DO UPDATE SET time = EXCLUDED.time, value = EXCLUDED.value WHERE l.time < EXCLUDED.time")
	if err != nil {
		return 0, fmt.Errorf("update latest values: %w", err)
	}
	return inserted, nil
}

// seriesIDs returns the series of every row, resolving the uncached ones in one round trip.
func (w *writer) seriesIDs(ctx context.Context, rows []row) ([]seriesRef, error) {
	refs := make([]seriesRef, len(rows))
	var missing []int
	w.mu.Lock()
	for i, r := range rows {
		if ref, ok := w.series[r.key]; ok {
			refs[i] = ref
		} else {
			missing = append(missing, i)
		}
	}
	w.mu.Unlock()
	if len(missing) == 0 {
		return refs, nil
	}
	// Two rounds at most: a series created concurrently by another writer is invisible to the
	// first round's snapshot and found by the second.
	for round := 0; round < 2 && len(missing) > 0; round++ {
		if err := w.resolve(ctx, rows, missing); err != nil {
			return nil, err
		}
		w.mu.Lock()
		still := missing[:0]
		for _, i := range missing {
			if ref, ok := w.series[rows[i].key]; ok {
				refs[i] = ref
			} else {
				still = append(still, i)
			}
		}
		w.mu.Unlock()
		missing = still
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("resolve series: %d series still missing", len(missing))
	}
	return refs, nil
}

// resolveSeries creates the missing series and returns the id of every input series. A series
// whose class the configuration changed is moved to the new class: its new rows go to the new
// class's table, its old rows stay where they are (the views cover every class).
//
// A new series takes the type of its first reading; a series keeps its type (checkKinds).
const resolveSeries = `
WITH input AS (
	SELECT DISTINCT ON (tenant, device, metric) tenant, device, metric, unit, class, type
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS t(tenant, device, metric, unit, class, type, n)
	ORDER BY tenant, device, metric, n
), created AS (
	INSERT INTO %[1]s AS s (tenant, device, metric, unit, class, type)
	SELECT tenant, device, metric, unit, class, type FROM input
	ON CONFLICT (tenant, device, metric) DO UPDATE SET class = EXCLUDED.class WHERE s.class <> EXCLUDED.class
	RETURNING id, tenant, device, metric, type
)
SELECT id, tenant, device, metric, type FROM created
UNION ALL
SELECT s.id, s.tenant, s.device, s.metric, s.type FROM %[1]s s JOIN input i USING (tenant, device, metric)`

func (w *writer) resolve(ctx context.Context, rows []row, missing []int) error {
	n := len(missing)
	tenants, devices, metrics := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	units, classes, types := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	for _, i := range missing {
		r := rows[i]
		tenants, devices, metrics = append(tenants, r.key.tenant), append(devices, r.key.device), append(metrics, r.key.metric)
		units, classes = append(units, r.unit), append(classes, w.classes.names[w.classes.of(r.key.tenant, r.key.device)])
		types = append(types, kinds[r.kind].name)
	}
	res, err := w.pool.Query(ctx, fmt.Sprintf(resolveSeries, w.seriesTable), tenants, devices, metrics, units, classes, types)
	if err != nil {
		return fmt.Errorf("resolve series: %w", err)
	}
	found := map[seriesKey]seriesRef{}
	var id int64
	var k seriesKey
	var typ string
	_, err = pgx.ForEachRow(res, []any{&id, &k.tenant, &k.device, &k.metric, &typ}, func() error {
		kd, ok := kindNamed(typ)
		if !ok {
			return fmt.Errorf("series %d has the unknown type %q", id, typ)
		}
		found[k] = seriesRef{id: id, kind: kd}
		return nil
	})
	if err != nil {
		return fmt.Errorf("resolve series: %w", err)
	}
	w.mu.Lock()
	if len(w.series)+len(found) > maxCachedSeries {
		w.series = map[seriesKey]seriesRef{}
	}
	for k, ref := range found {
		ref.class = w.classes.of(k.tenant, k.device)
		w.series[k] = ref
	}
	w.mu.Unlock()
	return nil
}
