package sink

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// row is one reading on its way to the database.
type row struct {
	key   seriesKey
	unit  string
	time  time.Time
	value float64
}

type seriesKey struct{ tenant, device, metric string }

// stageTable is the per-connection temporary table batches are copied into before the merge.
const stageTable = "sluice_stage"

// maxCachedSeries bounds the series id cache; past it the cache starts afresh.
const maxCachedSeries = 1 << 20

// writer writes batches of rows to one PostgreSQL database. It is safe for concurrent use.
type writer struct {
	pool *pgxpool.Pool
	// Qualified table names: writes never depend on the search path.
	seriesTable, measurements string

	mu     sync.Mutex
	series map[seriesKey]int64
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
			" (time timestamptz, series_id bigint, value double precision) ON COMMIT DELETE ROWS")
		return err
	}
	return pgxpool.NewWithConfig(context.Background(), pc)
}

func newWriter(pool *pgxpool.Pool, schema string) *writer {
	return &writer{
		pool:         pool,
		seriesTable:  pgx.Identifier{schema, "series"}.Sanitize(),
		measurements: pgx.Identifier{schema, "measurements_standard"}.Sanitize(),
		series:       map[seriesKey]int64{},
	}
}

// write stores rows in one transaction: COPY into the staging table, then merge into the
// measurements table, skipping rows already there. It returns how many rows were new.
func (w *writer) write(ctx context.Context, rows []row) (int64, error) {
	ids, err := w.seriesIDs(ctx, rows)
	if err != nil {
		return 0, err
	}
	var inserted int64
	err = pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{stageTable}, []string{"time", "series_id", "value"},
			pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
				return []any{rows[i].time, ids[i], rows[i].value}, nil
			}))
		if err != nil {
			return fmt.Errorf("copy %d rows: %w", len(rows), err)
		}
		tag, err := tx.Exec(ctx, "INSERT INTO "+w.measurements+" (time, series_id, value) SELECT time, series_id, value FROM "+
			stageTable+" ON CONFLICT DO NOTHING")
		if err != nil {
			return fmt.Errorf("merge %d rows: %w", len(rows), err)
		}
		inserted = tag.RowsAffected()
		return nil
	})
	return inserted, err
}

// seriesIDs returns the series id of every row, creating missing series in one round trip.
func (w *writer) seriesIDs(ctx context.Context, rows []row) ([]int64, error) {
	ids := make([]int64, len(rows))
	var missing []int
	w.mu.Lock()
	for i, r := range rows {
		if id, ok := w.series[r.key]; ok {
			ids[i] = id
		} else {
			missing = append(missing, i)
		}
	}
	w.mu.Unlock()
	if len(missing) == 0 {
		return ids, nil
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
			if id, ok := w.series[rows[i].key]; ok {
				ids[i] = id
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
	return ids, nil
}

const resolveSeries = `
WITH input AS (
	SELECT DISTINCT ON (tenant, device, metric) tenant, device, metric, unit
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(tenant, device, metric, unit)
), created AS (
	INSERT INTO %[1]s (tenant, device, metric, unit)
	SELECT tenant, device, metric, unit FROM input
	ON CONFLICT (tenant, device, metric) DO NOTHING
	RETURNING id, tenant, device, metric
)
SELECT id, tenant, device, metric FROM created
UNION ALL
SELECT s.id, s.tenant, s.device, s.metric FROM %[1]s s JOIN input i USING (tenant, device, metric)`

func (w *writer) resolve(ctx context.Context, rows []row, missing []int) error {
	n := len(missing)
	tenants, devices, metrics, units := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	for _, i := range missing {
		r := rows[i]
		tenants, devices, metrics, units = append(tenants, r.key.tenant), append(devices, r.key.device), append(metrics, r.key.metric), append(units, r.unit)
	}
	res, err := w.pool.Query(ctx, fmt.Sprintf(resolveSeries, w.seriesTable), tenants, devices, metrics, units)
	if err != nil {
		return fmt.Errorf("resolve series: %w", err)
	}
	found := map[seriesKey]int64{}
	var id int64
	var k seriesKey
	_, err = pgx.ForEachRow(res, []any{&id, &k.tenant, &k.device, &k.metric}, func() error {
		found[k] = id
		return nil
	})
	if err != nil {
		return fmt.Errorf("resolve series: %w", err)
	}
	w.mu.Lock()
	if len(w.series)+len(found) > maxCachedSeries {
		w.series = map[seriesKey]int64{}
	}
	for k, id := range found {
		w.series[k] = id
	}
	w.mu.Unlock()
	return nil
}
