package sink

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

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
	tableIDs                     []pgx.Identifier     // the same, for COPY
	typedTables                  [][len(kinds)]string // typed tables by class index and kind

	// fallbacks counts the batches whose direct copy met stored rows or a lock conflict and
	// were merged through the staging table instead (nil: not counted).
	fallbacks prometheus.Counter

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
		w.tableIDs = append(w.tableIDs, pgx.Identifier{schema, classNames{schema, name}.table()})
		var typed [len(kinds)]string
		for _, k := range typedKinds {
			typed[k] = typedNames{schema, name, k}.qtable()
		}
		w.typedTables = append(w.typedTables, typed)
	}
	return w
}

// write stores rows in one transaction and moves latest forward for every series whose newest
// row is newer than what latest holds, skipping rows already stored. It returns how many rows
// were new.
func (w *writer) write(ctx context.Context, rows []row) (int64, error) {
	return w.writeWith(ctx, rows, nil)
}

// writeWith is write that also updates the device inventory with inv (when not nil and not
// empty) in the same transaction.
//
// The rows are copied straight into their class tables (copyRows): a live feed's batch is new,
// and that costs PostgreSQL a fraction of a merge. When the copy meets a row already stored (a
// redelivery, a replay, a concurrent writer) or a lock conflict, the transaction is rolled back
// and the batch written again through the staging table, skipping what is stored
// (writeStaged), and w.fallbacks counts it.
func (w *writer) writeWith(ctx context.Context, rows []row, inv *inventory) (int64, error) {
	refs, err := w.seriesIDs(ctx, rows)
	if err != nil {
		return 0, err
	}
	var inserted int64
	err = pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		if len(rows) > 0 {
			if inserted, err = w.copyRows(ctx, tx, rows, refs); err != nil {
				return err
			}
		}
		return inv.store(ctx, tx, w.devices)
	})
	if !mustMerge(err) {
		return inserted, err
	}
	if w.fallbacks != nil {
		w.fallbacks.Inc()
	}
	return w.writeStaged(ctx, rows, refs, inv)
}

// writeStaged is writeWith through the staging table: every row goes through INSERT … ON
// CONFLICT DO NOTHING in key order (merge), so that rows already stored are skipped and
// concurrent writers lock rows in the same order.
func (w *writer) writeStaged(ctx context.Context, rows []row, refs []seriesRef, inv *inventory) (int64, error) {
	var inserted int64
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		var err error
		if len(rows) > 0 {
			if inserted, err = w.merge(ctx, tx, rows, refs); err != nil {
				return err
			}
		}
		return inv.store(ctx, tx, w.devices)
	})
	return inserted, err
}

// mustMerge reports whether a direct copy failed because some rows are stored already
// (unique_violation) or a concurrent transaction holds them (deadlock, serialization
// failure): the batch is then written through the staging merge instead.
func mustMerge(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "23505", "40P01", "40001":
		return true
	}
	return false
}

// copyRows is the fast step of write inside tx: rows (whose series refs are resolved) are
// copied into their classes' tables with one binary COPY per class, and latest moves forward
// from their newest row per series, computed here. It fails with unique_violation when a row
// is already stored (or twice in rows). Typed rows take the staging merge (mergeTyped).
// It returns how many rows were stored.
func (w *writer) copyRows(ctx context.Context, tx pgx.Tx, rows []row, refs []seriesRef) (int64, error) {
	inserted, rows, refs, err := w.writeTyped(ctx, tx, rows, refs)
	if err != nil || len(rows) == 0 {
		return inserted, err
	}
	// Rows go in key order, class by class: each class's rows are one COPY, neighbours in an
	// index go in together, a series' rows of a batch lie together in the heap, and concurrent
	// writers meet each other's keys in the same order.
	order := make([]int, len(rows))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		if c := cmp.Compare(refs[a].class, refs[b].class); c != 0 {
			return c
		}
		if c := cmp.Compare(refs[a].id, refs[b].id); c != 0 {
			return c
		}
		return rows[a].time.Compare(rows[b].time)
	})
	cols := []string{"time", "series_id", "value"}
	for lo := 0; lo < len(order); {
		c := refs[order[lo]].class
		hi := lo + 1
		for hi < len(order) && refs[order[hi]].class == c {
			hi++
		}
		part := order[lo:hi]
		copied, err := tx.CopyFrom(ctx, w.tableIDs[c], cols, pgx.CopyFromSlice(len(part), func(j int) ([]any, error) {
			i := part[j]
			return []any{rows[i].time, refs[i].id, rows[i].value}, nil
		}))
		if err != nil {
			return 0, fmt.Errorf("copy %d rows to %s: %w", len(part), w.tables[c], err)
		}
		inserted += copied
		lo = hi
	}
	return inserted, w.moveLatest(ctx, tx, rows, refs, order)
}

// moveLatest replaces the latest row of each series in rows by its newest row there, when
// that is newer than the stored one; of rows of equal time, the first counts. order sorts
// rows by series (as copyRows does), so that concurrent writers lock latest's rows in the
// same order.
func (w *writer) moveLatest(ctx context.Context, tx pgx.Tx, rows []row, refs []seriesRef, order []int) error {
	var (
		ids    []int64
		times  []time.Time
		values []float64
	)
	for k, i := range order {
		r := &rows[i]
		if k == 0 || refs[i].id != ids[len(ids)-1] {
			ids, times, values = append(ids, refs[i].id), append(times, r.time), append(values, r.value)
		} else if r.time.After(times[len(times)-1]) {
			times[len(times)-1], values[len(values)-1] = r.time, r.value
		}
	}
	_, err := tx.Exec(ctx, "INSERT INTO "+w.latest+" AS l (series_id, time, value)"+
		" SELECT * FROM unnest($1::int8[], $2::timestamptz[], $3::float8[])"+
		" ON CONFLICT (series_id) DO UPDATE SET time = EXCLUDED.time, value = EXCLUDED.value WHERE l.time < EXCLUDED.time",
		ids, times, values)
	if err != nil {
		return fmt.Errorf("update latest values: %w", err)
	}
	return nil
}

// writeTyped merges the text, boolean and location rows of rows through the staging table
// (mergeTyped) and returns how many were new, and the numeric rows left for the caller.
func (w *writer) writeTyped(ctx context.Context, tx pgx.Tx, rows []row, refs []seriesRef) (int64, []row, []seriesRef, error) {
	typed, err := checkKinds(rows, refs)
	if err != nil || typed == 0 {
		return 0, rows, refs, err
	}
	n, err := w.mergeTyped(ctx, tx, rows, refs, typed)
	if err != nil {
		return 0, nil, nil, err
	}
	if typed == len(rows) {
		return n, nil, nil, nil
	}
	rows, refs = numericRows(rows, refs, typed)
	return n, rows, refs, nil
}

// merge is the idempotent step of write inside tx: rows (whose series refs are resolved) are
// copied into the staging table, inserted into their classes' tables where they are not yet,
// and latest moves forward. The staging rows stay until the transaction ends (or the caller
// empties the table); it returns how many rows were new.
func (w *writer) merge(ctx context.Context, tx pgx.Tx, rows []row, refs []seriesRef) (int64, error) {
	inserted, rows, refs, err := w.writeTyped(ctx, tx, rows, refs)
	if err != nil || len(rows) == 0 {
		return inserted, err
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
