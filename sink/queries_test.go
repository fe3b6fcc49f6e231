package sink

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-iot/sluice/internal/pgtest"
)

var (
	sqlBlock   = regexp.MustCompile("(?s)```sql\n(.*?)```")
	timeFilter = regexp.MustCompile(`\$__timeFilter\((\w+)\)`)
)

// TestQueriesDoc runs every query of docs/queries.md against a database holding readings,
// with Grafana's macros and variables replaced, and wants rows from each. TimescaleDB queries
// run when the database has the extension.
func TestQueriesDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/queries.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := sqlBlock.FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 10 {
		t.Fatalf("docs/queries.md: %d SQL blocks, want at least 10", len(blocks))
	}
	cfg := storageTarget(t)
	pool := testPool(t, cfg)
	migrateOK(t, pool, cfg)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var rows []row
	for i := range 48 {
		for _, d := range []string{"meter-1", "meter-2"} {
			rows = append(rows, row{key: seriesKey{"demo", d, "kwh"}, unit: "kWh", time: t0.Add(time.Duration(i) * 30 * time.Minute), value: float64(i)})
		}
	}
	if _, err := newWriter(pool, cfg.Schema, cfg.Storage).write(ctx, rows); err != nil {
		t.Fatal(err)
	}
	ts := hasTimescale(t)
	conn := pgtest.Connect(t, cfg.Schema)
	// As a Grafana data source would have it: the views first, then the extension's functions.
	if _, err := conn.Exec(ctx, "SET search_path TO "+cfg.Schema+", public"); err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		q := b[1]
		title, _, _ := strings.Cut(q, "\n")
		t.Run(strings.TrimPrefix(title, "-- "), func(t *testing.T) {
			switch {
			case strings.HasPrefix(title, "-- TimescaleDB"):
				if !ts {
					t.Skip("needs the timescaledb extension, which the test database does not have")
				}
			case !strings.HasPrefix(title, "-- portable"):
				t.Fatalf("the query's first line must say -- portable or -- TimescaleDB: %q", title)
			}
			q = timeFilter.ReplaceAllString(q, "$1 BETWEEN TIMESTAMPTZ '2026-03-01 00:00:00+00' AND TIMESTAMPTZ '2026-03-02 00:00:00+00'")
			q = strings.NewReplacer("$__timeFrom()", "'2026-03-01T00:00:00Z'", "$__timeTo()", "'2026-03-02T00:00:00Z'", "$__interval", "1h", "$tenant", "demo", "$device", "meter-1", "$metric", "kwh").Replace(q)
			res, err := conn.Query(ctx, q)
			if err != nil {
				t.Fatalf("%v\n%s", err, q)
			}
			n := 0
			for res.Next() {
				n++
			}
			if err := res.Err(); err != nil {
				t.Fatalf("%v\n%s", err, q)
			}
			if n == 0 {
				t.Errorf("no rows:\n%s", q)
			}
		})
	}
}
