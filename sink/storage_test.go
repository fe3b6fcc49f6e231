package sink

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice/internal/pgtest"
)

// storageTarget is a target config on a fresh schema with classes standard (default), free
// (tenant demo, 30 days) and archive (device acme/meter-1).
func storageTarget(t testing.TB) TargetConfig {
	cfg := DefaultTargetConfig()
	cfg.DatabaseURL = pgtest.URL()
	cfg.Schema = pgtest.Schema(t)
	cfg.Storage = StorageConfig{
		DefaultClass: "standard",
		Classes: []ClassConfig{
			DefaultClassConfig(),
			{Name: "free", ChunkInterval: Period(day), CompressAfter: Period(2 * day), Retention: Period(30 * day)},
			{Name: "archive", ChunkInterval: Period(7 * day)},
		},
		Assign: []AssignRule{{Tenant: "demo", Class: "free"}, {Tenant: "acme", Device: "meter-1", Class: "archive"}},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func testPool(t testing.TB, cfg TargetConfig) *pgxpool.Pool {
	t.Helper()
	pool, err := newPool(cfg.DatabaseURL, cfg.Schema, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func quietLog() zerolog.Logger {
	if testing.Verbose() {
		return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr})
	}
	return zerolog.Nop()
}

func migrateOK(t testing.TB, pool *pgxpool.Pool, cfg TargetConfig) []string {
	t.Helper()
	out, err := Migrate(context.Background(), pool, cfg, quietLog())
	if err != nil {
		t.Fatalf("migrate: %v\n%s", err, strings.Join(out, "\n"))
	}
	return out
}

// hasTimescale reports whether the test database has the timescaledb extension installed.
func hasTimescale(t testing.TB) bool {
	t.Helper()
	return pgtest.Count(t, "", "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'") > 0
}

func TestStorageMigratePlain(t *testing.T) {
	if hasTimescale(t) {
		t.Skip("the test database has timescaledb: the plain PostgreSQL path is covered by TestStorageTimescale's database-independent checks")
	}
	cfg := storageTarget(t)
	pool := testPool(t, cfg)
	out := migrateOK(t, pool, cfg)
	for _, want := range []string{
		"applied 1: series, measurements, readings view",
		"applied 2: class registry, latest values",
		"created table measurements_free for class free",
		"created table measurements_archive for class archive",
		"views readings, readings_latest, readings_1h and readings_1d and functions readings_points and readings_step cover classes standard, free, archive (readings_1h/1d aggregating raw readings at query time)",
		"skipped class free: measurements_free is a plain table; not applied: chunk_interval 1d (not partitioned), compress_after 2d (not compressed), retention 30d (readings are kept until deleted)",
		"skipped class archive: measurements_archive is a plain table; not applied: chunk_interval 7d (not partitioned)",
		"skipped continuous aggregates: readings_1h and readings_1d are plain views aggregating raw readings at query time",
		"applied 3: series value type",
		"created table text_standard for the text readings of class standard",
		"created table location_archive for the location readings of class archive",
		"views readings_text, readings_bool and readings_location cover classes standard, free, archive",
	} {
		if !slices.Contains(out, want) {
			t.Errorf("migrate output lacks %q; got:\n%s", want, strings.Join(out, "\n"))
		}
	}
	if got, want := out[len(out)-1], "schema "+cfg.Schema+": applied 17 changes (5 features skipped, listed above)"; got != want {
		t.Errorf("last line = %q, want %q", got, want)
	}
	if !strings.HasPrefix(out[len(out)-6], "skipped hypertables, compression, retention and continuous aggregates: the timescaledb extension is not installed") {
		t.Errorf("first skip line = %q", out[len(out)-6])
	}
	for _, rel := range []string{"series", "latest", "sluice_classes", "measurements_standard", "measurements_free", "measurements_archive",
		"readings", "readings_latest", "readings_1h", "readings_1d", "text_standard", "bool_free", "location_archive",
		"readings_text", "readings_bool", "readings_location"} {
		if n := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2", cfg.Schema, rel); n != 1 {
			t.Errorf("%s: %d relations, want 1", rel, n)
		}
	}

	// Idempotent: a second run applies and creates nothing, and says the same about skips.
	again := migrateOK(t, pool, cfg)
	for _, l := range again[:len(again)-1] {
		if !strings.HasPrefix(l, "skipped ") {
			t.Errorf("second migrate changed something: %q", l)
		}
	}
	if got, want := len(again), 6; got != want {
		t.Errorf("second migrate: %d lines, want 5 skip lines and the summary:\n%s", got, strings.Join(again, "\n"))
	}
	if got, want := again[len(again)-1], "schema "+cfg.Schema+": nothing to change, it matches the configuration (5 features skipped, listed above)"; got != want {
		t.Errorf("second migrate's last line = %q, want %q", got, want)
	}
	if got := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM sluice_schema_version"); got != int64(len(migrations)) {
		t.Errorf("schema versions recorded: %d, want %d", got, len(migrations))
	}
}

// Two processes migrating the same fresh schema at once: the advisory lock serialises them,
// each step is recorded once, and both succeed.
func TestStorageMigrateConcurrent(t *testing.T) {
	cfg := storageTarget(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = MigrateTarget(context.Background(), cfg, false, quietLog())
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migrator %d: %v", i, err)
		}
	}
	if got := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM sluice_schema_version"); got != int64(len(migrations)) {
		t.Errorf("schema versions recorded: %d, want %d", got, len(migrations))
	}
	if got := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM sluice_classes"); got != 3 {
		t.Errorf("classes registered: %d, want 3", got)
	}
}

// A database made by the first schema (measurements_standard only, readings over it) keeps its
// rows, gains latest values from them, and its views cover the new classes.
func TestStorageMigrateExistingDatabase(t *testing.T) {
	cfg := storageTarget(t)
	conn := pgtest.Connect(t, cfg.Schema)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, migrations[0].sql); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE sluice_schema_version (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
INSERT INTO sluice_schema_version (version, name) VALUES (1, 'series, measurements, readings view');
INSERT INTO series (tenant, device, metric, unit) VALUES ('t', 'd', 'temp', 'C');
INSERT INTO measurements_standard (time, series_id, value) VALUES ('2026-01-01T00:00:00Z', 1, 20), ('2026-01-01T01:00:00Z', 1, 21)`); err != nil {
		t.Fatal(err)
	}
	pool := testPool(t, cfg)
	out := migrateOK(t, pool, cfg)
	if slices.Contains(out, "applied 1: series, measurements, readings view") || !slices.Contains(out, "applied 2: class registry, latest values") {
		t.Errorf("migrate output:\n%s", strings.Join(out, "\n"))
	}
	var value float64
	var at time.Time
	if err := conn.QueryRow(ctx, "SELECT time, value FROM readings_latest WHERE device = 'd'").Scan(&at, &value); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC); !at.Equal(want) || value != 21 {
		t.Errorf("latest = %v %v, want %v 21", at, value, want)
	}
	if n := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM readings"); n != 2 {
		t.Errorf("readings: %d rows, want 2", n)
	}
}

// Rows go to their class's table; latest moves forward only to newer rows; the views answer.
func TestStorageWriter(t *testing.T) {
	cfg := storageTarget(t)
	pool := testPool(t, cfg)
	migrateOK(t, pool, cfg)
	w := newWriter(pool, cfg.Schema, cfg.Storage)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	mk := func(tenant, device, metric string, at time.Time, v float64) row {
		return row{key: seriesKey{tenant, device, metric}, unit: "u", time: at, value: v}
	}
	n, err := w.write(ctx, []row{
		mk("acme", "meter-1", "kwh", t0, 1),                   // archive (device rule)
		mk("acme", "meter-2", "kwh", t0, 2),                   // standard (default)
		mk("demo", "meter-1", "kwh", t0, 3),                   // free (tenant rule)
		mk("demo", "meter-1", "kwh", t0.Add(time.Minute), 4),  // free, newer
		mk("demo", "meter-1", "kwh", t0.Add(-time.Minute), 5), // free, older
	})
	if err != nil || n != 5 {
		t.Fatalf("write = %d, %v; want 5 rows", n, err)
	}
	for table, want := range map[string]int64{"measurements_archive": 1, "measurements_standard": 1, "measurements_free": 3} {
		if got := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM "+table); got != want {
			t.Errorf("%s: %d rows, want %d", table, got, want)
		}
	}
	classes := map[string]string{}
	rows, _ := pgtest.Connect(t, cfg.Schema).Query(ctx, "SELECT tenant || '/' || device, class FROM series")
	for rows.Next() {
		var k, c string
		rows.Scan(&k, &c)
		classes[k] = c
	}
	if want := map[string]string{"acme/meter-1": "archive", "acme/meter-2": "standard", "demo/meter-1": "free"}; fmt.Sprint(classes) != fmt.Sprint(want) {
		t.Errorf("series classes = %v, want %v", classes, want)
	}
	latest := func(device, tenant string) (time.Time, float64) {
		var at time.Time
		var v float64
		err := pgtest.Connect(t, cfg.Schema).QueryRow(ctx, "SELECT time, value FROM readings_latest WHERE tenant = $1 AND device = $2", tenant, device).Scan(&at, &v)
		if err != nil {
			t.Fatal(err)
		}
		return at, v
	}
	if at, v := latest("meter-1", "demo"); !at.Equal(t0.Add(time.Minute)) || v != 4 {
		t.Errorf("latest = %v %v, want the newest row (%v, 4)", at, v, t0.Add(time.Minute))
	}

	// An older row and a duplicate change nothing; a newer one moves latest forward.
	n, err = w.write(ctx, []row{mk("demo", "meter-1", "kwh", t0.Add(-time.Hour), 6), mk("demo", "meter-1", "kwh", t0.Add(time.Minute), 99)})
	if err != nil || n != 1 {
		t.Fatalf("write older + duplicate = %d, %v; want 1 new row", n, err)
	}
	if at, v := latest("meter-1", "demo"); !at.Equal(t0.Add(time.Minute)) || v != 4 {
		t.Errorf("after an older row: latest = %v %v, want (%v, 4)", at, v, t0.Add(time.Minute))
	}
	if _, err := w.write(ctx, []row{mk("demo", "meter-1", "kwh", t0.Add(time.Hour), 7)}); err != nil {
		t.Fatal(err)
	}
	if at, v := latest("meter-1", "demo"); !at.Equal(t0.Add(time.Hour)) || v != 7 {
		t.Errorf("after a newer row: latest = %v %v, want (%v, 7)", at, v, t0.Add(time.Hour))
	}

	if got := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM readings"); got != 7 {
		t.Errorf("readings: %d rows, want 7", got)
	}
	// demo/meter-1 in the 10:00 hour: 10:00 → 3, 10:01 → 4; 09:59 → 5 and 09:00 → 6 are the 09:00 hour.
	var avg, mn, mx, first, last float64
	var count int64
	err = pgtest.Connect(t, cfg.Schema).QueryRow(ctx, `SELECT avg, min, max, count, first, last FROM readings_1h
		WHERE tenant = 'demo' AND device = 'meter-1' AND metric = 'kwh' AND bucket = '2026-03-01T10:00:00Z'`).Scan(&avg, &mn, &mx, &count, &first, &last)
	if err != nil {
		t.Fatal(err)
	}
	if avg != 3.5 || mn != 3 || mx != 4 || count != 2 || first != 3 || last != 4 {
		t.Errorf("readings_1h 10:00 = avg %v min %v max %v count %v first %v last %v; want 3.5 3 4 2 3 4", avg, mn, mx, count, first, last)
	}
	err = pgtest.Connect(t, cfg.Schema).QueryRow(ctx, `SELECT avg, min, max, count, first, last FROM readings_1d
		WHERE tenant = 'demo' AND device = 'meter-1' AND bucket = '2026-03-01T00:00:00Z'`).Scan(&avg, &mn, &mx, &count, &first, &last)
	if err != nil {
		t.Fatal(err)
	}
	if mn != 3 || mx != 7 || count != 5 || first != 6 || last != 7 {
		t.Errorf("readings_1d = min %v max %v count %v first %v last %v; want 3 7 5 6 7", mn, mx, count, first, last)
	}
}

// A series the configuration moves to another class keeps its old rows where they are and
// writes new rows to the new class; the views show both.
func TestStorageClassChange(t *testing.T) {
	cfg := storageTarget(t)
	pool := testPool(t, cfg)
	migrateOK(t, pool, cfg)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	r := row{key: seriesKey{"demo", "d1", "temp"}, time: t0, value: 1}
	if _, err := newWriter(pool, cfg.Schema, cfg.Storage).write(ctx, []row{r}); err != nil {
		t.Fatal(err)
	}
	moved := cfg
	moved.Storage.Assign = nil // demo falls back to standard
	migrateOK(t, pool, moved)
	r.time, r.value = t0.Add(time.Hour), 2
	if _, err := newWriter(pool, cfg.Schema, moved.Storage).write(ctx, []row{r}); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]int64{
		"SELECT count(*) FROM measurements_free":                        1,
		"SELECT count(*) FROM measurements_standard":                    1,
		"SELECT count(*) FROM series WHERE class = 'standard'":          1,
		"SELECT count(*) FROM readings WHERE device = 'd1'":             2,
		"SELECT count(*) FROM readings_latest WHERE value = 2":          1,
		"SELECT sum(count) FROM readings_1d WHERE device = 'd1'":        2,
		"SELECT count(*) FROM sluice_classes WHERE name = 'archive'":    1,
		"SELECT count(*) FROM readings_1h WHERE bucket >= '2026-03-01'": 2,
	} {
		if got := pgtest.Count(t, cfg.Schema, q); got != want {
			t.Errorf("%s = %d, want %d", q, got, want)
		}
	}
}

// A class removed from the configuration keeps its table in the views.
func TestStorageRemovedClassStaysInViews(t *testing.T) {
	cfg := storageTarget(t)
	pool := testPool(t, cfg)
	migrateOK(t, pool, cfg)
	if _, err := newWriter(pool, cfg.Schema, cfg.Storage).write(context.Background(),
		[]row{{key: seriesKey{"acme", "meter-1", "kwh"}, time: time.Now(), value: 1}}); err != nil {
		t.Fatal(err)
	}
	fewer := cfg
	fewer.Storage.Classes = cfg.Storage.Classes[:2]
	fewer.Storage.Assign = cfg.Storage.Assign[:1]
	out := migrateOK(t, pool, fewer)
	want := "class archive is no longer configured: measurements_archive keeps its readings, its settings as last recorded, and stays in the views"
	if !slices.Contains(out, want) {
		t.Errorf("migrate output lacks %q:\n%s", want, strings.Join(out, "\n"))
	}
	if got := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM readings WHERE device = 'meter-1'"); got != 1 {
		t.Errorf("readings of the removed class: %d, want 1", got)
	}
}

// Plan (sluice migrate --dry-run) prints the SQL a migration would run and changes nothing;
// after the migration only the skip comments remain.
func TestStorageDryRun(t *testing.T) {
	if hasTimescale(t) {
		t.Skip("the test database has timescaledb: the plan differs (TestTimescaleGolden covers it)")
	}
	cfg := storageTarget(t)
	ctx := context.Background()
	plan, err := MigrateTarget(ctx, cfg, true, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan, "\n")
	for _, want := range []string{
		"-- migration 1: series, measurements, readings view\nBEGIN;\nSET LOCAL search_path TO \"" + cfg.Schema + "\";\nCREATE TABLE IF NOT EXISTS series (",
		"INSERT INTO sluice_schema_version (version, name) VALUES (2, 'class registry, latest values');\nCOMMIT;",
		"-- migration 2: class registry, latest values",
		"-- created table measurements_free for class free\nCREATE TABLE IF NOT EXISTS \"" + cfg.Schema + "\".\"measurements_free\" (",
		"CREATE OR REPLACE VIEW \"" + cfg.Schema + "\".\"readings_1d\" AS",
		"-- skipped class free: measurements_free is a plain table; not applied: chunk_interval 1d (not partitioned), compress_after 2d (not compressed), retention 30d (readings are kept until deleted)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("dry run lacks %q; got:\n%s", want, text)
		}
	}
	if n := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM pg_tables WHERE schemaname = $1", cfg.Schema); n != 0 {
		t.Errorf("the dry run created %d tables", n)
	}
	if _, err := MigrateTarget(ctx, cfg, false, quietLog()); err != nil {
		t.Fatal(err)
	}
	plan, err = MigrateTarget(ctx, cfg, true, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range plan {
		if !strings.HasPrefix(l, "-- skipped ") {
			t.Errorf("dry run after the migration plans %q", l)
		}
	}
}
