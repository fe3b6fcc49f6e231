// Package grafana holds the Grafana dashboards that ship with Sluice; its test checks them
// against a real database and Sluice's real metrics.
package grafana_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/internal/sitetest"
)

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string     `json:"name"`
			Query      string     `json:"query"`
			Datasource datasource `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int        `json:"id"`
	Title      string     `json:"title"`
	Type       string     `json:"type"`
	Datasource datasource `json:"datasource"`
	Targets    []struct {
		RefID      string     `json:"refId"`
		Datasource datasource `json:"datasource"`
		RawSQL     string     `json:"rawSql"`
		Expr       string     `json:"expr"`
	} `json:"targets"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// The data sources the compose example provisions (deploy/compose/grafana/datasource.yaml).
const (
	sqlSource  = "sluice-db"
	promSource = "sluice-prom"
)

// TestDashboards parses every dashboard, runs each SQL query (panels and variables) with
// Grafana's macros and variables substituted against a site's database holding readings of
// every type and the device inventory, wanting rows from each, and checks that every metric
// each Prometheus query names is one Sluice registers.
func TestDashboards(t *testing.T) {
	files, err := filepath.Glob("*.json")
	if err != nil || len(files) < 3 {
		t.Fatalf("dashboards: %v, %v; want at least fleet, device and operations", files, err)
	}
	// The compose example provisions the data sources by these uids and mounts this directory.
	for file, want := range map[string][]string{
		"../compose/grafana/datasource.yaml": {"uid: " + sqlSource, "uid: " + promSource},
		"../compose/grafana/dashboards.yaml": {"path: /var/lib/grafana-dashboards/sluice"},
		"../compose/docker-compose.yml":      {"../grafana:/var/lib/grafana-dashboards/sluice:ro", "./prometheus.yml:/etc/prometheus/prometheus.yml"},
		"../compose/prometheus.yml":          {`targets: ["sluice:9484"]`},
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s lacks %q", file, w)
			}
		}
	}
	site := sitetest.Start(t, sitetest.Config(t))
	fill(t, site)
	conn := pgtest.Connect(t, site.Schema)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "SET search_path TO "+site.Schema+", public"); err != nil {
		t.Fatal(err)
	}
	g := pgtest.Grafana{
		From: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC),
		Interval: time.Hour,
		Vars:     map[string]string{"tenant": "default", "device": "meter-1", "metric": "kwh"},
	}
	metricName := regexp.MustCompile(`\bsluice_[a-z0-9_]+`)
	uids := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
			t.Fatalf("%s: want a uid, a title and panels", f)
		}
		if other, dup := uids[d.UID]; dup {
			t.Errorf("%s and %s share the uid %s", f, other, d.UID)
		}
		uids[d.UID] = f
		runSQL := func(name, ds, q string) {
			t.Run(f+"/"+name, func(t *testing.T) {
				if ds != sqlSource {
					t.Fatalf("data source %q, want %s", ds, sqlSource)
				}
				q, err := g.Expand(q)
				if err != nil {
					t.Fatal(err)
				}
				rows, err := conn.Query(ctx, q)
				if err != nil {
					t.Fatalf("%v\n%s", err, q)
				}
				n := 0
				for rows.Next() {
					n++
				}
				if err := rows.Err(); err != nil {
					t.Fatalf("%v\n%s", err, q)
				}
				if n == 0 {
					t.Errorf("no rows:\n%s", q)
				}
			})
		}
		for _, v := range d.Templating.List {
			runSQL("variable "+v.Name, v.Datasource.UID, v.Query)
		}
		for _, p := range d.Panels {
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %d %q has no query", f, p.ID, p.Title)
			}
			for _, tg := range p.Targets {
				ds := tg.Datasource.UID
				if ds == "" {
					ds = p.Datasource.UID
				}
				name := fmt.Sprintf("panel %d %s %s", p.ID, p.Title, tg.RefID)
				switch {
				case tg.RawSQL != "":
					runSQL(name, ds, tg.RawSQL)
				case tg.Expr != "":
					if ds != promSource {
						t.Errorf("%s: %s: data source %q, want %s", f, name, ds, promSource)
					}
					names := metricName.FindAllString(tg.Expr, -1)
					if len(names) == 0 {
						t.Errorf("%s: %s: %q names no Sluice metric", f, name, tg.Expr)
					}
					for _, m := range names {
						if !registered(site.Registry(), m) {
							t.Errorf("%s: %s: %s is not a metric Sluice exports (%s)", f, name, m, tg.Expr)
						}
					}
				default:
					t.Errorf("%s: %s: neither rawSql nor expr", f, name)
				}
			}
		}
	}
}

// registered reports whether reg holds a metric named name (a histogram's _bucket, _sum and
// _count series count as their histogram's). It asks the registry itself: registering a
// probe of that name fails exactly when a metric of the name is there, whether or not it has
// series yet.
func registered(reg *prometheus.Registry, name string) bool {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && registered(reg, base) {
			return true
		}
	}
	probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "probe of the dashboard test"})
	if err := reg.Register(probe); err != nil {
		return true
	}
	reg.Unregister(probe)
	return false
}

// fill publishes a day of uplinks of two devices to the site, numbers, texts, booleans and
// positions, waits for them in the database, and makes meter-2 silent for two hours.
func fill(t *testing.T, site *sitetest.Site) {
	t.Helper()
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + site.MQTTAddr).SetClientID("dashboards"))
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer cl.Disconnect(100)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range 48 {
		at := t0.Add(time.Duration(i) * 30 * time.Minute).UnixMilli()
		for _, d := range []string{"meter-1", "meter-2"} {
			payload := fmt.Sprintf(`{"time":%d,"kwh":%d,"battery":%d,"state":%q,"relay":%t,"position":{"latitude":%g,"longitude":4.9}}`,
				at, i, 100-i, []string{"idle", "charging", "full"}[i%3], i%2 == 0, 52+float64(i)/1000)
			if tok := cl.Publish("sensors/"+d+"/up", 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish: %v", tok.Error())
			}
		}
	}
	if n := site.WaitRows(t, "SELECT count(*) FROM readings_location", 96, 60*time.Second); n != 96 {
		t.Fatalf("positions stored: %d, want 96", n)
	}
	if n := site.WaitRows(t, "SELECT coalesce(sum(uplinks), 0)::bigint FROM devices", 96, 30*time.Second); n != 96 {
		t.Fatalf("uplinks in the inventory: %d, want 96", n)
	}
	pgtest.Exec(t, "UPDATE "+site.Schema+".devices SET last_seen = now() - interval '2 hours' WHERE device = 'meter-2'")
}
