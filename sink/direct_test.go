package sink_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/sink"
)

// A Writer call with one row its checks refuse and one the database refuses commits the
// others, reports both refusals with their reasons, runs its commit hook in the same
// transaction, and writing the same rows again adds nothing.
func TestWriterIsolatesRefusedRowsInOneTransaction(t *testing.T) {
	cfg := targetConfig(t, "dst")
	w, err := sink.NewWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := context.Background()
	if _, err := w.Migrate(ctx, testLog()); err != nil {
		t.Fatal(err)
	}
	pgtest.Exec(t, "ALTER TABLE "+cfg.Schema+".measurements_standard ADD CONSTRAINT no_sentinel CHECK (value <> -999)")
	pgtest.Exec(t, "CREATE TABLE "+cfg.Schema+".hook (n bigint)")
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var rows []sink.Row
	for i := range 100 {
		rows = append(rows, sink.Row{Time: at.Add(time.Duration(i) * time.Second), Tenant: "t", Device: "d", Metric: "m", Unit: "C", Value: float64(i)})
	}
	rows[10].Value = math.NaN()
	rows[70].Value = -999
	hook := func(ctx context.Context, tx pgx.Tx, res *sink.WriteResult) error {
		_, err := tx.Exec(ctx, "INSERT INTO hook VALUES ($1)", res.Inserted)
		return err
	}
	res, err := w.Write(ctx, rows, hook)
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 98 || len(res.Refused) != 2 {
		t.Fatalf("inserted %d, refused %+v; want 98 and 2", res.Inserted, res.Refused)
	}
	if r := res.Refused[0]; r.Index != 10 || r.Reason != "value is not a finite number" || r.SQLState != "" {
		t.Errorf("first refusal: %+v", r)
	}
	if r := res.Refused[1]; r.Index != 70 || r.SQLState != "23514" {
		t.Errorf("second refusal: %+v", r)
	}
	if n := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM readings"); n != 98 {
		t.Errorf("readings: got %d, want 98", n)
	}
	if n := pgtest.Count(t, cfg.Schema, "SELECT sum(n) FROM hook"); n != 98 {
		t.Errorf("hook saw %d inserted rows, want 98", n)
	}
	if n := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM latest WHERE time = '2026-01-01T00:01:39Z' AND value = 99"); n != 1 {
		t.Errorf("latest did not move to the newest row")
	}
	res, err = w.Write(ctx, rows[:50], nil)
	if err != nil || res.Inserted != 0 {
		t.Fatalf("rewrite: inserted %d, err %v; want 0", res.Inserted, err)
	}
	if n := pgtest.Count(t, cfg.Schema, "SELECT count(*) FROM latest WHERE value = 99"); n != 1 {
		t.Errorf("latest moved backwards")
	}
}
