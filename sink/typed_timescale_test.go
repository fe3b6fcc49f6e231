package sink

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-iot/sluice"
)

// On TimescaleDB the typed tables are hypertables with the chunk interval of their class,
// compressed segmented by series_id and ordered by time, with their class's retention; rows
// written into a compressed chunk again are skipped, and the views read compressed chunks.
func TestTimescaleTypedTables(t *testing.T) {
	cfg, db := timescaleTarget(t)
	pool := testPool(t, cfg)
	out := migrateTimescale(t, pool, cfg, db)
	for _, want := range []string{
		"text_standard is a hypertable (chunk interval 1d)",
		"location_free compresses chunks segmented by series_id, ordered by time DESC",
		"retention policy of bool_free: after 30d",
		"text_archive is a hypertable (chunk interval 7d)",
	} {
		if !slices.Contains(out, want) {
			t.Errorf("migrate output lacks %q:\n%s", want, strings.Join(out, "\n"))
		}
	}
	if again := migrateOK(t, pool, cfg); !strings.Contains(again[len(again)-1], "nothing to change") {
		t.Errorf("second migrate changed something:\n%s", strings.Join(again, "\n"))
	}
	var settings []string
	db.Query(t, cfg.Schema, func(conn *pgx.Conn) error {
		rows, err := conn.Query(context.Background(), `SELECT hypertable_name || ' ' || attname || ' ' || coalesce(segmentby_column_index::text, '-') || ' ' || coalesce(orderby_column_index::text, '-') || ' ' || coalesce(orderby_asc::text, '-')
FROM timescaledb_information.compression_settings WHERE hypertable_schema = $1 AND hypertable_name IN ('text_standard', 'bool_standard', 'location_standard') ORDER BY 1`, cfg.Schema)
		if err != nil {
			return err
		}
		var s string
		_, err = pgx.ForEachRow(rows, []any{&s}, func() error { settings = append(settings, s); return nil })
		return err
	})
	want := []string{
		"bool_standard series_id 1 - -", "bool_standard time - 1 false",
		"location_standard series_id 1 - -", "location_standard time - 1 false",
		"text_standard series_id 1 - -", "text_standard time - 1 false",
	}
	if !slices.Equal(settings, want) {
		t.Errorf("compression settings:\n%s\nwant\n%s", strings.Join(settings, "\n"), strings.Join(want, "\n"))
	}

	w := newWriter(pool, cfg.Schema, cfg.Storage)
	ctx := context.Background()
	old := time.Now().UTC().Add(-10 * day).Truncate(time.Second)
	var rows []row
	for i := range 50 {
		at := old.Add(time.Duration(i) * time.Minute)
		rows = append(rows,
			row{key: seriesKey{"t1", "d1", "status"}, time: at, text: fmt.Sprintf("state %d", i%3), kind: kindText},
			row{key: seriesKey{"t1", "d1", "door"}, time: at, value: float64(i % 2), kind: kindBool},
			row{key: seriesKey{"t1", "d1", "pos"}, time: at, loc: &sluice.Location{Lat: 52 + float64(i)/1e4, Lon: 4.9}, kind: kindLocation},
			row{key: seriesKey{"t1", "d1", "temp"}, time: at, value: float64(i)},
		)
	}
	if n, err := w.write(ctx, rows); err != nil || n != 200 {
		t.Fatalf("write = %d, %v; want 200", n, err)
	}
	runJobs(t, db, cfg.Schema, "policy_compression")
	var compressed int64
	db.Query(t, cfg.Schema, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_schema = $1
AND hypertable_name IN ('text_standard', 'bool_standard', 'location_standard') AND is_compressed`, cfg.Schema).Scan(&compressed)
	})
	if compressed < 3 {
		t.Errorf("%d compressed typed chunks, want at least 3", compressed)
	}
	if n, err := w.write(ctx, rows); err != nil || n != 0 {
		t.Errorf("rewrite into compressed chunks = %d, %v; want 0 new rows", n, err)
	}
	for view, want := range map[string]int64{"readings_text": 50, "readings_bool": 50, "readings_location": 50, "readings": 50} {
		if got := db.Count(t, cfg.Schema, "SELECT count(*) FROM "+view+" WHERE device = 'd1'"); got != want {
			t.Errorf("%s: %d rows, want %d", view, got, want)
		}
	}
	if got := db.Count(t, cfg.Schema, "SELECT count(*) FROM readings_text WHERE value = 'state 1'"); got != 17 {
		t.Errorf("readings_text 'state 1': %d rows, want 17", got)
	}
}
