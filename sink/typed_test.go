package sink_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/pgtest"
)

// Text, boolean and location readings are stored in their tables and read from their views,
// once each however often they are delivered; numbers stay where they were. Bad values and
// readings whose type differs from their series' are dead letters with the reason, and the
// good rows of the same batch are kept.
func TestTypedReadingsStored(t *testing.T) {
	buf := openBuffer(t, nil)
	cfg := targetConfig(t, "main")
	cfg.BatchRows = 1000
	cfg.BatchWait = time.Second
	migrate(t, cfg)

	at := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	alt := 12.5
	u1 := &sluice.Uplink{ID: "u1", Tenant: "t1", Device: "tracker", ReceivedAt: at, Readings: []sluice.Reading{
		{Metric: "temperature", Value: 21.5, Unit: "°C", Time: at},
		sluice.TextReading("battery_status", "Good", at),
		sluice.BoolReading("door_open", true, at),
		sluice.LocationReading("position", 52.3731, 4.8922, &alt, at),
		sluice.LocationReading("lora.location", -33.9, 151.2, nil, at),
	}}
	// An old series of numbers that now receives a boolean goes on as numbers.
	u0 := uplink("u0", "tracker", at.Add(-time.Minute), 1)
	u0.Readings[0].Metric = "alarm"
	at2 := at.Add(time.Second)
	u2 := &sluice.Uplink{ID: "u2", Tenant: "t1", Device: "tracker", ReceivedAt: at2, Readings: []sluice.Reading{
		sluice.BoolReading("alarm", false, at2),
		sluice.TextReading("battery_status", "Low", at2),
		sluice.TextReading("temperature", "warm", at2), // a series of numbers
		{Metric: "door_open", Value: 0, Time: at2},     // a number for a boolean series
		sluice.TextReading("note", strings.Repeat("x", 1025), at2),
		sluice.TextReading("label", "a\x00b", at2),
		sluice.LocationReading("position", 91, 4.9, nil, at2),
		sluice.BoolReading("door_open", false, at2.Add(time.Second)),
	}}
	publish(t, buf, u0)
	tg := startTarget(t, buf, cfg, prometheus.NewRegistry())
	if n := waitCount(t, cfg.Schema, "SELECT count(*) FROM readings", 1, 30*time.Second); n != 1 {
		t.Fatalf("numeric readings before the typed ones: got %d, want 1", n)
	}
	publish(t, buf, u1)
	publish(t, buf, u1) // a redelivery under another message id stores nothing twice
	publish(t, buf, u2)
	mqtttest.WaitFor(t, 30*time.Second, "5 dead letters", func() bool { return len(deadLetters(t, buf, "main")) >= 5 })
	if n := waitCount(t, cfg.Schema, "SELECT count(*) FROM readings_bool", 2, 30*time.Second); n != 2 {
		t.Fatalf("readings_bool: got %d, want 2", n)
	}
	tg.stop()

	var got []string
	pgtest.Query(t, cfg.Schema, func(conn *pgx.Conn) error {
		for _, q := range []string{
			"SELECT 'number', device, metric, value::text, unit FROM readings",
			"SELECT 'text', device, metric, value, unit FROM readings_text",
			"SELECT 'bool', device, metric, value::text, unit FROM readings_bool",
			"SELECT 'location', device, metric, latitude || ' ' || longitude || ' ' || coalesce(altitude::text, '-'), unit FROM readings_location",
			"SELECT 'series', device, metric, type, class FROM series",
		} {
			rows, err := conn.Query(context.Background(), q)
			if err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
			var a, b, c, d, e string
			_, err = pgx.ForEachRow(rows, []any{&a, &b, &c, &d, &e}, func() error {
				got = append(got, strings.Join([]string{a, b, c, d, e}, " "))
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	sort.Strings(got)
	want := []string{
		"bool tracker door_open false ",
		"bool tracker door_open true ",
		"location tracker lora.location -33.9 151.2 - ",
		"location tracker position 52.3731 4.8922 12.5 ",
		"number tracker alarm 0 ",
		"number tracker alarm 1 ",
		"number tracker temperature 21.5 °C",
		"series tracker alarm number standard",
		"series tracker battery_status text standard",
		"series tracker door_open bool standard",
		"series tracker lora.location location standard",
		"series tracker position location standard",
		"series tracker temperature number standard",
		"text tracker battery_status Good ",
		"text tracker battery_status Low ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stored:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	var letters []string
	for _, dl := range deadLetters(t, buf, "main") {
		if dl.Row == nil {
			t.Errorf("dead letter without its row: %+v", dl)
			continue
		}
		letters = append(letters, dl.Row.Metric+" "+string(dl.Row.Type)+"|"+dl.Error)
	}
	sort.Strings(letters)
	wantLetters := []string{
		"door_open |series t1/tracker/door_open holds bool values and this reading is a number: a series keeps the type of its first reading (name the new value another metric)",
		"label text|text value contains a NUL byte",
		"note text|text value is 1025 bytes, more than 1024 (limits.max_value_bytes)",
		"position location|latitude 91 is outside -90..90",
		"temperature text|series t1/tracker/temperature holds number values and this reading is a text: a series keeps the type of its first reading (name the new value another metric)",
	}
	if strings.Join(letters, "\n") != strings.Join(wantLetters, "\n") {
		t.Errorf("dead letters:\n%s\nwant:\n%s", strings.Join(letters, "\n"), strings.Join(wantLetters, "\n"))
	}
}
