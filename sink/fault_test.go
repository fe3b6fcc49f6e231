package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-iot/sluice"
)

func TestFaultOf(t *testing.T) {
	for _, c := range []struct {
		err   error
		fault fault
		state string
	}{
		{&pgconn.PgError{Code: "22021", Message: "invalid byte sequence"}, faultData, "22021"},
		{fmt.Errorf("copy 3 rows: %w", &pgconn.PgError{Code: "23514"}), faultData, "23514"},
		{&pgconn.PgError{Code: "23502"}, faultData, "23502"},
		{&pgconn.PgError{Code: "54000"}, faultData, "54000"},
		{&pgconn.PgError{Code: "23505"}, faultTransient, "23505"}, // the expected conflict is merged, never isolated
		{&pgconn.PgError{Code: "08006"}, faultTransient, "08006"},
		{&pgconn.PgError{Code: "53300"}, faultTransient, "53300"},
		{&pgconn.PgError{Code: "57P01"}, faultTransient, "57P01"},
		{&pgconn.PgError{Code: "40001"}, faultTransient, "40001"},
		{&pgconn.PgError{Code: "42P01"}, faultTransient, "42P01"}, // a missing table: retried, never dropped
		{context.DeadlineExceeded, faultTransient, ""},
		{errors.New("unexpected EOF"), faultTransient, ""},
	} {
		f, state := faultOf(c.err)
		if f != c.fault || state != c.state {
			t.Errorf("faultOf(%v): got %v %q, want %v %q", c.err, f, state, c.fault, c.state)
		}
	}
}

func TestRowLimits(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	l := DefaultRowLimits()
	u := &sluice.Uplink{Tenant: "t", Device: "d"}
	ok := sluice.Reading{Metric: "m", Value: 1, Time: now}
	for _, c := range []struct {
		name string
		edit func(u *sluice.Uplink, r *sluice.Reading)
		want string
	}{
		{"valid", func(*sluice.Uplink, *sluice.Reading) {}, ""},
		{"nan", func(_ *sluice.Uplink, r *sluice.Reading) { r.Value = nan() }, "value is not a finite number"},
		{"zero time", func(_ *sluice.Uplink, r *sluice.Reading) { r.Time = time.Time{} },
			"time 0001-01-01T00:00:00Z is out of range (after 0001-01-01T00:00:00Z, until year 9999)"},
		{"year 10000", func(_ *sluice.Uplink, r *sluice.Reading) { r.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
			"time 10000-01-01T00:00:00Z is out of range (after 0001-01-01T00:00:00Z, until year 9999)"},
		{"future", func(_ *sluice.Uplink, r *sluice.Reading) { r.Time = now.Add(25 * time.Hour) },
			"time 2026-06-02T01:00:00Z is more than 24h0m0s in the future (limits.max_future)"},
		{"nul device", func(u *sluice.Uplink, _ *sluice.Reading) { u.Device = "a\x00b" }, "device contains a NUL byte"},
		{"bad utf-8 unit", func(_ *sluice.Uplink, r *sluice.Reading) { r.Unit = "\xff" }, "unit is not valid UTF-8"},
		{"replaced metric", func(_ *sluice.Uplink, r *sluice.Reading) { r.Metric = "t\ufffda" }, "metric contains U+FFFD, the mark of text that was not valid"},
		{"replaced device", func(u *sluice.Uplink, _ *sluice.Reading) { u.Device = "\ufffd" }, "device contains U+FFFD, the mark of text that was not valid"},
		{"long tenant", func(u *sluice.Uplink, _ *sluice.Reading) { u.Tenant = strings.Repeat("t", 257) },
			"tenant is 257 bytes, more than 256 (limits.max_text_bytes)"},
		{"empty metric", func(_ *sluice.Uplink, r *sluice.Reading) { r.Metric = "" }, "metric is empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			uu, r := *u, ok
			c.edit(&uu, &r)
			if got := l.check(&uu, &r, now); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func nan() float64 { var z float64; return z / z }

func TestTargetConfigValidate(t *testing.T) {
	c := DefaultTargetConfig()
	c.DatabaseURL = "postgres://x"
	c.Start = "yesterday"
	c.Limits.MaxTextBytes = 0
	c.Limits.MaxFuture = -time.Second
	err := c.Validate()
	want := []string{
		`start: "yesterday" is not all, new or an RFC 3339 time (2026-01-02T15:04:05Z)`,
		"limits.max_future: must not be negative (0 disables the check)",
		"limits.max_text_bytes: 0 is outside 1..2048",
	}
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	b := DefaultBufferConfig()
	b.WhenFull = "drop_newest"
	if err := b.Validate(); err == nil || err.Error() != `when_full: "drop_newest" is not one of refuse, drop_oldest` {
		t.Errorf("buffer when_full: got %v", err)
	}
}

// A refused row that JSON cannot carry still becomes a dead letter, with the row as text.
func TestDeadLetterOfUnencodableRow(t *testing.T) {
	dl := &sluice.DeadLetter{Row: &sluice.Reading{Metric: "m", Value: nan(), Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, Error: "value is not a finite number"}
	data, err := encodeDeadLetter(dl)
	if err != nil {
		t.Fatal(err)
	}
	want := `"error":"value is not a finite number (row not representable in JSON: metric \"m\", value NaN, time 10000-01-01T00:00:00Z)"`
	if !strings.Contains(string(data), want) {
		t.Fatalf("got %s, want it to contain %s", data, want)
	}
}
