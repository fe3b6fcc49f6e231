package sink

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice/internal/pgtest"
)

// BenchmarkWriteBatch compares what an idempotent write costs against a plain COPY, for
// batches of 5,000 new readings over 50 series:
//
//   - staging+merge: the writer (COPY into a temporary table, INSERT … ON CONFLICT DO NOTHING
//     into the class table, latest moved forward), one transaction;
//
//   - staging+merge, redelivered: the same batch again (every row a conflict), as after a
//     crash or a replay;
//
//   - plain COPY: straight into the measurements table: not idempotent (a redelivered batch
//     fails on the primary key), the floor of what a write can cost.
//
//     ./scripts/test -run XXX -bench WriteBatch -benchtime 2s ./sink/
func BenchmarkWriteBatch(b *testing.B) {
	ctx := context.Background()
	cfg := DefaultTargetConfig()
	cfg.DatabaseURL, cfg.Schema = pgtest.URL(), pgtest.Schema(b)
	pool, err := newPool(cfg.DatabaseURL, cfg.Schema, 2)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if _, err := Migrate(ctx, pool, cfg, zerolog.Nop()); err != nil {
		b.Fatal(err)
	}
	w := newWriter(pool, cfg.Schema, cfg.Storage)
	const batch, series = 5000, 50
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	next := 0
	rowsAt := func() []row { // a batch of new readings: 100 times × 50 series
		rows := make([]row, batch)
		for i := range rows {
			rows[i] = row{key: seriesKey{"t", fmt.Sprintf("dev-%d", i%series), "m"}, time: base.Add(time.Duration(next+i/series) * time.Second), value: float64(i)}
		}
		next += batch / series
		return rows
	}
	if _, err := w.write(ctx, rowsAt()); err != nil { // series resolved and cached
		b.Fatal(err)
	}
	perRow := func(b *testing.B) {
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
	}

	b.Run("staging+merge", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if n, err := w.write(ctx, rowsAt()); err != nil || n != batch {
				b.Fatalf("write: %d rows, %v", n, err)
			}
		}
		perRow(b)
	})
	b.Run("staging+merge-redelivered", func(b *testing.B) {
		rows := rowsAt()
		if _, err := w.write(ctx, rows); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if n, err := w.write(ctx, rows); err != nil || n != 0 {
				b.Fatalf("write: %d rows, %v", n, err)
			}
		}
		perRow(b)
	})
	b.Run("plain-copy", func(b *testing.B) {
		table := pgx.Identifier{cfg.Schema, "measurements_standard"}
		b.ReportAllocs()
		for b.Loop() {
			rows := rowsAt()
			refs, err := w.seriesIDs(ctx, rows)
			if err != nil {
				b.Fatal(err)
			}
			n, err := pool.CopyFrom(ctx, table, []string{"time", "series_id", "value"},
				pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
					return []any{rows[i].time, refs[i].id, rows[i].value}, nil
				}))
			if err != nil || n != batch {
				b.Fatalf("copy: %d rows, %v", n, err)
			}
		}
		perRow(b)
	})
}
