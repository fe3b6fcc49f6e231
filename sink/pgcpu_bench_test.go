package sink

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluice-iot/sluice"
)

// pgCPU reads the CPU time PostgreSQL spent for one writer: its backends plus the WAL writer,
// checkpointer and background writer, from /proc (the server must run on this machine).
type pgCPU struct{ pids []int }

// newPGCPU finds the backends of pool's connections (all of them, acquired at once) and the
// server's background processes that write on their behalf.
func newPGCPU(ctx context.Context, pool *pgxpool.Pool) (*pgCPU, error) {
	conns := make([]*pgxpool.Conn, pool.Config().MaxConns)
	c := &pgCPU{}
	for i := range conns {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		conns[i] = conn
		var pid int
		if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			return nil, err
		}
		c.pids = append(c.pids, pid)
	}
	defer func() {
		for _, conn := range conns {
			conn.Release()
		}
	}()
	rows, err := conns[0].Query(ctx, "SELECT pid FROM pg_stat_activity WHERE backend_type IN ('walwriter', 'checkpointer', 'background writer')")
	if err != nil {
		return nil, err
	}
	bg, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, err
	}
	c.pids = append(c.pids, bg...)
	if _, err := c.seconds(); err != nil {
		return nil, fmt.Errorf("PostgreSQL's processes are not readable here: %w", err)
	}
	return c, nil
}

// seconds is the user and system CPU time the processes have used so far.
func (c *pgCPU) seconds() (float64, error) {
	var ticks int64
	for _, pid := range c.pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, err
		}
		// The command may hold spaces: the fields after it start past the last ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		for _, s := range f[11:13] { // utime, stime (fields 14 and 15)
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return 0, err
			}
			ticks += n
		}
	}
	return float64(ticks) / 100, nil // USER_HZ is 100 on Linux
}

// pgcpuMessages is the feed BenchmarkPGCPU writes: 100,000 messages of 4 readings from 50
// devices (200 series), one message every 10 ms, in batches of 5,000 readings with the
// device inventory of each batch.
const (
	pgcpuMessages = 100_000
	pgcpuDevices  = 50
	pgcpuPer      = 4
)

// pgcpuBatch is one batch of the feed starting at message first: its rows and its inventory.
func pgcpuBatch(first int, start time.Time) ([]row, *inventory) {
	const msgs = benchBatch / pgcpuPer
	rows := make([]row, 0, benchBatch)
	inv := &inventory{}
	metrics := [pgcpuPer]string{"temperature", "humidity", "pressure", "battery"}
	for m := first; m < first+msgs; m++ {
		at := start.Add(time.Duration(m) * 10 * time.Millisecond)
		u := sluice.Uplink{Tenant: "acme", Device: fmt.Sprintf("eui-70b3d57ed0%06d", m%pgcpuDevices), ReceivedAt: at, Decoder: "json"}
		for k, metric := range metrics {
			rows = append(rows, row{key: seriesKey{u.Tenant, u.Device, metric}, unit: "u", time: at, value: float64(m*pgcpuPer + k)})
			u.Readings = append(u.Readings, sluice.Reading{Metric: metric, Value: float64(m), Time: at})
		}
		inv.note(&u)
	}
	return rows, inv
}

// BenchmarkPGCPU measures what PostgreSQL spends, in CPU seconds of its own processes, to store
// 100,000 messages (400,000 readings) through the sink's writer, batch by batch as a live feed
// arrives: `pg-cpu-s/100k-msgs`. Each variant starts from an empty schema. The variants are
// the writer's paths and the schema choices weighed against each other:
//
//   - staged: COPY into the staging table, INSERT … ON CONFLICT DO NOTHING in key order,
//     latest by DISTINCT ON over the staging table (the redelivery path; the only one before);
//   - copy: the writer (COPY straight into the class table, latest from unnest arrays);
//   - copy-savepoint: the same under a savepoint inside the transaction;
//   - copy-no-time-index, copy-time-asc, copy-time-brin: the writer without the (time DESC)
//     index, with an ascending one instead, or a BRIN index;
//   - copy-latest-ff50, copy-no-last-seen-index: latest at fillfactor 50 (room for HOT
//     updates), devices without its last_seen index;
//   - copy-no-indexes: a bare COPY into the table without any index, the floor.
//
// Compare the paths round by round on a busy machine, e.g.
//
//	go test -c -o /tmp/sink.test ./sink/ && for i in 1 2 3 4 5 6; do uptime;
//	  for v in staged copy; do /tmp/sink.test -test.run XXX -test.bench "PGCPU/$v\$" -test.benchtime 1x; done; done
func BenchmarkPGCPU(b *testing.B) {
	ctx := context.Background()
	for _, v := range []struct {
		name   string
		schema string // run after the migration
		write  func(w *writer, rows []row, inv *inventory) error
	}{
		{name: "staged", write: func(w *writer, rows []row, inv *inventory) error {
			refs, err := w.seriesIDs(ctx, rows)
			if err != nil {
				return err
			}
			_, err = w.writeStaged(ctx, rows, refs, inv)
			return err
		}},
		{name: "copy", write: func(w *writer, rows []row, inv *inventory) error {
			_, err := w.writeWith(ctx, rows, inv)
			return err
		}},
		{name: "copy-savepoint", write: func(w *writer, rows []row, inv *inventory) error {
			refs, err := w.seriesIDs(ctx, rows)
			if err != nil {
				return err
			}
			return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
				err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error { _, err := w.copyRows(ctx, sp, rows, refs); return err })
				if err != nil {
					return err
				}
				return inv.upsert(ctx, tx, w.devices)
			})
		}},
		{name: "copy-no-time-index", schema: "DROP INDEX measurements_standard_time_idx"},
		{name: "copy-time-asc", schema: "DROP INDEX measurements_standard_time_idx; CREATE INDEX ON measurements_standard (time)"},
		{name: "copy-latest-ff50", schema: "ALTER TABLE latest SET (fillfactor = 50)"},
		{name: "copy-no-last-seen-index", schema: "DROP INDEX devices_last_seen_idx"},
		{name: "copy-time-brin", schema: "DROP INDEX measurements_standard_time_idx; CREATE INDEX ON measurements_standard USING brin (time)"},
		{name: "copy-no-indexes", schema: "DROP INDEX measurements_standard_time_idx; ALTER TABLE measurements_standard DROP CONSTRAINT measurements_standard_pkey", write: func(w *writer, rows []row, inv *inventory) error {
			refs, err := w.seriesIDs(ctx, rows)
			if err != nil {
				return err
			}
			_, err = w.pool.CopyFrom(ctx, w.tableIDs[0], []string{"time", "series_id", "value"}, pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
				return []any{rows[i].time, refs[i].id, rows[i].value}, nil
			}))
			return err
		}},
	} {
		if v.write == nil {
			v.write = func(w *writer, rows []row, inv *inventory) error {
				_, err := w.writeWith(ctx, rows, inv)
				return err
			}
		}
		b.Run(v.name, func(b *testing.B) {
			var cpu, elapsed float64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				cfg, tgt := DefaultTargetConfig(), storageTarget(b)
				cfg.DatabaseURL, cfg.Schema = tgt.DatabaseURL, tgt.Schema
				pool, err := newPool(cfg.DatabaseURL, cfg.Schema, 1)
				if err != nil {
					b.Fatal(err)
				}
				migrateOK(b, pool, cfg)
				if v.schema != "" {
					if _, err := pool.Exec(ctx, v.schema); err != nil {
						b.Fatal(err)
					}
				}
				w := newWriter(pool, cfg.Schema, cfg.Storage)
				start := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
				// Warm the series cache and the statements, as a running sink has them.
				rows, inv := pgcpuBatch(-benchBatch/pgcpuPer, start)
				if err := v.write(w, rows, inv); err != nil {
					b.Fatal(err)
				}
				batches := make([][]row, 0, pgcpuMessages*pgcpuPer/benchBatch)
				invs := make([]*inventory, 0, cap(batches))
				for m := 0; m < pgcpuMessages; m += benchBatch / pgcpuPer {
					rows, inv := pgcpuBatch(m, start)
					batches, invs = append(batches, rows), append(invs, inv)
				}
				pg, err := newPGCPU(ctx, pool)
				if err != nil {
					b.Skipf("measures PostgreSQL's CPU from /proc, so the server must run on this machine: %v", err)
				}
				before, err := pg.seconds()
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				b.StartTimer()
				for j := range batches {
					if err := v.write(w, batches[j], invs[j]); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				elapsed += time.Since(t0).Seconds()
				after, err := pg.seconds()
				if err != nil {
					b.Fatal(err)
				}
				cpu += after - before
				if n := pgcountRows(b, pool, cfg.Schema); n != pgcpuMessages*pgcpuPer+benchBatch {
					b.Fatalf("%d rows stored, want %d", n, pgcpuMessages*pgcpuPer+benchBatch)
				}
				pool.Close()
			}
			b.ReportMetric(cpu/float64(b.N)*100_000/pgcpuMessages, "pg-cpu-s/100k-msgs")
			b.ReportMetric(float64(b.N*pgcpuMessages*pgcpuPer)/elapsed, "rows/s")
		})
	}
}

func pgcountRows(b *testing.B, pool *pgxpool.Pool, schema string) int64 {
	var n int64
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM "+pgx.Identifier{schema, "measurements_standard"}.Sanitize()).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}
