package sink_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/internal/metrictest"
	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/pgtest"
)

// One batch of 10,000 readings holds 7 bad ones: 4 that validation refuses and 3 that the
// database refuses (a CHECK constraint an operator added, SQLSTATE 23514). The 9,993 others
// are stored exactly once and the 7 are on the dead-letter subject with their reasons.
func TestPoisonRowsIsolated(t *testing.T) {
	buf := openBuffer(t, nil)
	cfg := targetConfig(t, "main")
	cfg.BatchRows = 10_000
	cfg.BatchWait = 5 * time.Second
	migrate(t, cfg)
	pgtest.Exec(t, "ALTER TABLE "+cfg.Schema+".measurements_standard ADD CONSTRAINT no_sentinel CHECK (value <> -999)")

	at := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	bad := map[int]func(r *sluice.Reading){ // reading index → how it is spoiled
		17:   func(r *sluice.Reading) { r.Time = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC) },
		1234: func(r *sluice.Reading) { r.Unit = strings.Repeat("u", 300) },
		4321: func(r *sluice.Reading) { r.Time = at.Add(400 * 24 * time.Hour) },
		5000: func(r *sluice.Reading) { r.Metric = "bad\x00metric" },
		6001: func(r *sluice.Reading) { r.Value = -999 },
		7777: func(r *sluice.Reading) { r.Value = -999 },
		9998: func(r *sluice.Reading) { r.Value = -999 },
	}
	for m := range 1000 {
		u := uplink(fmt.Sprintf("u%04d", m), fmt.Sprintf("dev-%d", m%50), at.Add(time.Duration(m)*time.Second),
			0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
		for k := range u.Readings {
			if spoil := bad[m*10+k]; spoil != nil {
				spoil(&u.Readings[k])
			}
		}
		publish(t, buf, u)
	}
	reg := prometheus.NewRegistry()
	tg := startTarget(t, buf, cfg, reg)

	if n := waitCount(t, cfg.Schema, "SELECT count(*) FROM readings", 9993, 60*time.Second); n != 9993 {
		t.Fatalf("readings: got %d, want 9993", n)
	}
	mqtttest.WaitFor(t, 30*time.Second, "7 dead letters", func() bool { return len(deadLetters(t, buf, "main")) >= 7 })
	tg.stop()
	if n := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM readings"); n != 9993 {
		t.Fatalf("readings after stop: got %d, want 9993", n)
	}
	if n := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM (SELECT 1 FROM readings GROUP BY device, metric, time HAVING count(*) > 1) d"); n != 0 {
		t.Fatalf("%d duplicated readings", n)
	}
	if n := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM readings WHERE value = -999 OR time > now() OR metric LIKE 'bad%'"); n != 0 {
		t.Fatalf("%d bad readings stored", n)
	}

	dls := deadLetters(t, buf, "main")
	var got []string
	for _, dl := range dls {
		if dl.Row == nil || dl.Target != "main" || dl.Sequence == 0 || dl.UplinkID == "" || dl.Tenant != "t1" ||
			!strings.HasPrefix(dl.Subject, "sluice.up.t1.dev-") {
			t.Errorf("dead letter lacks its origin: %+v", dl)
			continue
		}
		got = append(got, fmt.Sprintf("%s %s %s|%s", dl.UplinkID, dl.Row.Metric, dl.SQLState, dl.Error))
	}
	sort.Strings(got)
	future := at.Add(400 * 24 * time.Hour).Format(time.RFC3339)
	check := `new row for relation "measurements_standard" violates check constraint "no_sentinel"`
	want := []string{
		"u0001 m7 |time 1999-01-01T00:00:00Z is more than 87600h0m0s in the past (limits.max_past)",
		"u0123 m4 |unit is 300 bytes, more than 256 (limits.max_text_bytes)",
		"u0432 m1 |time " + future + " is more than 24h0m0s in the future (limits.max_future)",
		"u0500 bad\x00metric |metric contains a NUL byte",
		"u0600 m1 23514|" + check,
		"u0777 m7 23514|" + check,
		"u0999 m8 23514|" + check,
	}
	if len(got) != len(want) {
		t.Fatalf("dead letters: got %d\n%s\nwant %d\n%s", len(got), strings.Join(got, "\n"), len(want), strings.Join(want, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("dead letter %d:\n got %q\nwant %q", i, got[i], want[i])
		}
	}
	for reason, want := range map[string]float64{"invalid": 4, "refused": 3} {
		got := metrictest.Value(t, reg, "sluice_sink_dead_letters_total", "reason", reason)
		if got != want {
			t.Errorf("sluice_sink_dead_letters_total{reason=%q}: got %v, want %v", reason, got, want)
		}
	}
	if r := tg.Report(context.Background()); r.RowsWritten != 9993 || r.DeadLetters != 7 || r.LagMessages != 0 {
		t.Errorf("report: got rows %d, dead letters %d, lag %d; want 9993, 7, 0", r.RowsWritten, r.DeadLetters, r.LagMessages)
	}
}
