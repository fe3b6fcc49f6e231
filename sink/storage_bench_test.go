package sink

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-iot/sluice/internal/pgtest"
)

// benchRows is one batch of n readings: 100 devices × 5 metrics of one tenant, one reading per
// series every 10 s, starting at start.
func benchRows(n int, start time.Time) []row {
	rows := make([]row, n)
	for i := range rows {
		s := i % 500
		rows[i] = row{
			key:   seriesKey{"acme-industrial", fmt.Sprintf("eui-70b3d57ed0%06d", s/5), [5]string{"temperature", "humidity", "pressure", "battery", "co2"}[s%5]},
			unit:  "u",
			time:  start.Add(time.Duration(i/500) * 10 * time.Second),
			value: float64(i),
		}
	}
	return rows
}

const benchBatch = 5000

// BenchmarkStorage compares writing the same batches into the series model (narrow class table,
// series ids, latest values) and into a wide table carrying tenant, device, metric and unit as
// text on every row: plain COPY into the table, and the idempotent path the sink uses (COPY
// into a staging table, INSERT … ON CONFLICT DO NOTHING). It reports rows/s and the bytes each
// stored row takes, indexes included.
func BenchmarkStorage(b *testing.B) {
	ctx := context.Background()
	wide := func(b *testing.B, schema string, conn *pgx.Conn) {
		_, err := conn.Exec(ctx, `CREATE TABLE `+schema+`.wide (time timestamptz NOT NULL, tenant text NOT NULL, device text NOT NULL,
			metric text NOT NULL, unit text NOT NULL, value double precision NOT NULL, PRIMARY KEY (tenant, device, metric, time));
			CREATE INDEX ON `+schema+`.wide (time DESC);
			CREATE TEMP TABLE wide_stage (time timestamptz, tenant text, device text, metric text, unit text, value double precision) ON COMMIT DELETE ROWS`)
		if err != nil {
			b.Fatal(err)
		}
	}
	wideRows := func(rows []row) pgx.CopyFromSource {
		return pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			r := rows[i]
			return []any{r.time, r.key.tenant, r.key.device, r.key.metric, r.unit, r.value}, nil
		})
	}
	cols := []string{"time", "tenant", "device", "metric", "unit", "value"}

	for _, c := range []struct {
		name  string
		setup func(b *testing.B) (write func([]row) error, table string, schema string)
	}{
		{"series/copy", func(b *testing.B) (func([]row) error, string, string) {
			cfg := storageTarget(b)
			pool := testPool(b, cfg)
			migrateOK(b, pool, cfg)
			w := newWriter(pool, cfg.Schema, cfg.Storage)
			return func(rows []row) error {
				refs, err := w.seriesIDs(ctx, rows)
				if err != nil {
					return err
				}
				_, err = pool.CopyFrom(ctx, pgx.Identifier{cfg.Schema, "measurements_standard"}, []string{"time", "series_id", "value"},
					pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) { return []any{rows[i].time, refs[i].id, rows[i].value}, nil }))
				return err
			}, "measurements_standard", cfg.Schema
		}},
		{"series/merge", func(b *testing.B) (func([]row) error, string, string) {
			cfg := storageTarget(b)
			pool := testPool(b, cfg)
			migrateOK(b, pool, cfg)
			w := newWriter(pool, cfg.Schema, cfg.Storage)
			return func(rows []row) error { _, err := w.write(ctx, rows); return err }, "measurements_standard", cfg.Schema
		}},
		{"wide/copy", func(b *testing.B) (func([]row) error, string, string) {
			cfg := storageTarget(b)
			pool := testPool(b, cfg)
			conn, err := pool.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(conn.Release)
			wide(b, cfg.Schema, conn.Conn())
			return func(rows []row) error {
				_, err := conn.CopyFrom(ctx, pgx.Identifier{cfg.Schema, "wide"}, cols, wideRows(rows))
				return err
			}, "wide", cfg.Schema
		}},
		{"wide/merge", func(b *testing.B) (func([]row) error, string, string) {
			cfg := storageTarget(b)
			pool := testPool(b, cfg)
			conn, err := pool.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(conn.Release)
			wide(b, cfg.Schema, conn.Conn())
			return func(rows []row) error {
				return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
					if _, err := tx.CopyFrom(ctx, pgx.Identifier{"wide_stage"}, cols, wideRows(rows)); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, `INSERT INTO `+cfg.Schema+`.wide SELECT * FROM wide_stage
						ORDER BY tenant, device, metric, time ON CONFLICT DO NOTHING`)
					return err
				})
			}, "wide", cfg.Schema
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			write, table, schema := c.setup(b)
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			batches := make([][]row, b.N)
			for i := range batches {
				batches[i] = benchRows(benchBatch, start.Add(time.Duration(i)*time.Hour))
			}
			// Warm the series cache as a running sink has it.
			if err := write(benchRows(500, start.Add(-time.Hour))); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := write(batches[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "rows/s")
			var size, rows int64
			conn := testPool(b, TargetConfig{DatabaseURL: pgtest.URL(), Schema: schema})
			if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT pg_total_relation_size('%s.%s'), (SELECT count(*) FROM %[1]s.%[2]s)", schema, table)).Scan(&size, &rows); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(size)/float64(rows), "bytes/row")
		})
	}
}
