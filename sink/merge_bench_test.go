package sink

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/internal/pgtest"
)

// BenchmarkWriteBatch compares what an idempotent write costs against a plain COPY, for
// batches of 5,000 new readings over 50 series:
//
//   - staging+merge: the writer, one transaction: since the direct copy, COPY straight into
//     the class table and latest moved forward (the name stays, for the figures of
//     docs/benchmarks.md); BenchmarkPGCPU/staged is the staging merge alone;
//
//   - staging+merge, redelivered: the same batch again (every row a conflict), as after a
//     crash or a replay: the direct copy fails at its first row and the batch is merged
//     through the staging table (COPY into a temporary table, INSERT … ON CONFLICT DO NOTHING);
//
//   - stage+merge only, unnest+merge only: the two idempotent merges without the latest
//     table (COPY into the staging table then INSERT … SELECT, or one INSERT … SELECT FROM
//     unnest of three arrays);
//
//   - plain COPY: straight into the measurements table: not idempotent (a redelivered batch
//     fails on the primary key), the floor of what a write can cost;
//
//   - staging+merge+inventory: the writer with the device inventory of the batch (5,000
//     uplinks of one reading each from 50 devices, noted while filling, one upsert of 50 rows);
//
//   - typed staging+merge: the writer on a batch whose series are a quarter each numbers,
//     texts, booleans and locations (the typed rows take the second staging table).
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
	// Every variant starts from an empty table, so that none pays for a bigger index.
	truncate := func(b *testing.B) {
		if _, err := pool.Exec(ctx, "TRUNCATE "+pgx.Identifier{cfg.Schema, "measurements_standard"}.Sanitize()); err != nil {
			b.Fatal(err)
		}
	}
	perRow := func(b *testing.B) {
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
	}

	b.Run("staging+merge", func(b *testing.B) {
		truncate(b)
		b.ReportAllocs()
		for b.Loop() {
			if n, err := w.write(ctx, rowsAt()); err != nil || n != batch {
				b.Fatalf("write: %d rows, %v", n, err)
			}
		}
		perRow(b)
	})
	b.Run("staging+merge+inventory", func(b *testing.B) {
		truncate(b)
		b.ReportAllocs()
		inv := &inventory{}
		us, rd := make([]sluice.Uplink, batch), make([]sluice.Reading, batch) // as the batch's decoded messages
		for b.Loop() {
			rows := rowsAt()
			inv.reset()
			for i := range rows {
				r := &rows[i]
				rd[i] = sluice.Reading{Metric: r.key.metric, Value: r.value, Time: r.time}
				us[i] = sluice.Uplink{Tenant: r.key.tenant, Device: r.key.device, ReceivedAt: r.time, Decoder: "json", Readings: rd[i : i+1]}
				inv.note(&us[i])
			}
			if n, err := w.writeWith(ctx, rows, inv); err != nil || n != batch {
				b.Fatalf("write: %d rows, %v", n, err)
			}
		}
		perRow(b)
	})
	b.Run("typed-staging+merge", func(b *testing.B) {
		truncate(b)
		for _, k := range typedKinds {
			if _, err := pool.Exec(ctx, "TRUNCATE "+typedNames{cfg.Schema, "standard", k}.qtable()); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		loc := &sluice.Location{Lat: 52.37, Lon: 4.89}
		for b.Loop() {
			rows := rowsAt()
			for i := range rows {
				r := &rows[i]
				switch k := kind(i % series % 4); k {
				case kindText:
					r.key.metric, r.kind, r.text = "state", k, "idle"
				case kindBool:
					r.key.metric, r.kind, r.value = "door", k, float64(i%2)
				case kindLocation:
					r.key.metric, r.kind, r.loc = "position", k, loc
				}
			}
			if n, err := w.write(ctx, rows); err != nil || n != batch {
				b.Fatalf("write: %d rows, %v", n, err)
			}
		}
		perRow(b)
	})
	b.Run("staging+merge-redelivered", func(b *testing.B) {
		truncate(b)
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
	// The two ways to merge idempotently, without the latest table: COPY into the staging
	// table then INSERT … SELECT, or one INSERT … SELECT FROM unnest of three arrays.
	b.Run("stage-merge-only", func(b *testing.B) {
		truncate(b)
		b.ReportAllocs()
		for b.Loop() {
			rows := rowsAt()
			refs, err := w.seriesIDs(ctx, rows)
			if err != nil {
				b.Fatal(err)
			}
			err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if _, err := tx.CopyFrom(ctx, pgx.Identifier{stageTable}, []string{"time", "series_id", "value"},
					pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
						return []any{rows[i].time, refs[i].id, rows[i].value}, nil
					})); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "INSERT INTO "+pgx.Identifier{cfg.Schema, "measurements_standard"}.Sanitize()+
					" (time, series_id, value) SELECT time, series_id, value FROM "+stageTable+" ORDER BY series_id, time ON CONFLICT DO NOTHING")
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		perRow(b)
	})
	b.Run("unnest-merge-only", func(b *testing.B) {
		truncate(b)
		b.ReportAllocs()
		q := "INSERT INTO " + pgx.Identifier{cfg.Schema, "measurements_standard"}.Sanitize() +
			" (time, series_id, value) SELECT * FROM unnest($1::timestamptz[], $2::int8[], $3::float8[]) ON CONFLICT DO NOTHING"
		for b.Loop() {
			rows := rowsAt()
			refs, err := w.seriesIDs(ctx, rows)
			if err != nil {
				b.Fatal(err)
			}
			times, ids, values := make([]time.Time, len(rows)), make([]int64, len(rows)), make([]float64, len(rows))
			for i, r := range rows {
				times[i], ids[i], values[i] = r.time, refs[i].id, r.value
			}
			if _, err := pool.Exec(ctx, q, times, ids, values); err != nil {
				b.Fatal(err)
			}
		}
		perRow(b)
	})
	b.Run("plain-copy", func(b *testing.B) {
		truncate(b)
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
