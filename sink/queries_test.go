package sink

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/internal/pgtest"
)

var sqlBlock = regexp.MustCompile("(?s)```sql\n(.*?)```")

// queryData writes what the documented queries and the dashboards read into cfg's schema:
// two meters' numbers over a day, a tracker's texts, booleans and positions, and the device
// inventory. Dashboards get them at the same times (2026-03-01 UTC).
func queryData(t testing.TB, pool *pgxpool.Pool, cfg TargetConfig) {
	t.Helper()
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var rows []row
	inv := &inventory{}
	for i := range 48 {
		at := t0.Add(time.Duration(i) * 30 * time.Minute)
		for _, d := range []string{"meter-1", "meter-2"} {
			rows = append(rows, row{key: seriesKey{"demo", d, "kwh"}, unit: "kWh", time: at, value: float64(i)})
			fcnt := uint32(i)
			inv.note(&sluice.Uplink{Tenant: "demo", Device: d, ReceivedAt: at, Decoder: "acme/meter", FCnt: &fcnt, Readings: []sluice.Reading{
				{Metric: "lora.rssi", Value: -80 - float64(i%5), Time: at}, {Metric: "battery", Value: 100 - float64(i), Time: at}}})
		}
		rows = append(rows,
			row{key: seriesKey{"demo", "meter-1", "state"}, time: at, text: []string{"idle", "charging", "full"}[i%3], kind: kindText},
			row{key: seriesKey{"demo", "meter-1", "relay"}, time: at, value: float64(i % 2), kind: kindBool},
			row{key: seriesKey{"demo", "meter-1", "position"}, time: at, loc: &sluice.Location{Lat: 52 + float64(i)/1000, Lon: 4.9}, kind: kindLocation},
		)
	}
	w := newWriter(pool, cfg.Schema, cfg.Storage)
	if _, err := w.writeWith(ctx, rows, inv); err != nil {
		t.Fatal(err)
	}
	// One device silent since yesterday (relative to now: the stale queries look back from now).
	if _, err := pool.Exec(ctx, "UPDATE devices SET last_seen = now() - interval '1 day' WHERE device = 'meter-2'"); err != nil {
		t.Fatal(err)
	}
}

// grafanaTest is the dashboard range and variables the documented queries and the dashboards
// are run with.
var grafanaTest = pgtest.Grafana{
	From: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC),
	Interval: time.Hour,
	Vars:     map[string]string{"tenant": "demo", "device": "meter-1", "metric": "kwh"},
}

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
	queryData(t, pool, cfg)
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
			q, err := grafanaTest.Expand(q)
			if err != nil {
				t.Fatal(err)
			}
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
