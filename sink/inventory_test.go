package sink

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sluice-iot/sluice"
)

// The inventory moves forward only: a late batch (a replay, a redelivery) widens first seen
// and adds its uplinks, but never rewinds the last values; a batch without radio readings
// keeps the last known ones.
func TestInventoryMovesForward(t *testing.T) {
	db := newInventoryDB(t)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	up := func(at time.Time, fcnt uint32, decoder string, rs ...sluice.Reading) *sluice.Uplink {
		for i := range rs {
			rs[i].Time = at
		}
		return &sluice.Uplink{Tenant: "t1", Device: "d1", ReceivedAt: at, FCnt: &fcnt, Decoder: decoder, Readings: rs}
	}
	write := func(us ...*sluice.Uplink) {
		t.Helper()
		db.write(func(inv *inventory) {
			for _, u := range us {
				inv.note(u)
			}
		})
	}
	state := func() string {
		t.Helper()
		return db.state("d1", "uplinks, last_fcnt, last_rssi, last_snr, gateways, battery, decoder")
	}
	radio := func(rssi, snr, gw, battery float64) []sluice.Reading {
		return []sluice.Reading{{Metric: "lora.rssi", Value: rssi}, {Metric: "lora.snr", Value: snr},
			{Metric: "lora.gateways", Value: gw}, {Metric: "battery", Value: battery}}
	}
	write(up(t0, 10, "acme/th", radio(-70, 5, 2, 3.1)...), up(t0.Add(time.Minute), 11, "acme/th", radio(-80, 4, 1, 3.0)...))
	if got, want := state(), "10:00 10:01 2 11 -80 4 1 3 acme/th"; got != want {
		t.Errorf("first batch: %q, want %q", got, want)
	}
	write(up(t0.Add(-time.Hour), 3, "old/th", radio(-50, 9, 5, 3.6)...)) // a late batch
	if got, want := state(), "09:00 10:01 3 11 -80 4 1 3 acme/th"; got != want {
		t.Errorf("after a late batch: %q, want %q", got, want)
	}
	write(up(t0.Add(2*time.Minute), 12, "chirpstack:status", sluice.Reading{Metric: "lora.battery", Value: 88}))
	if got, want := state(), "09:00 10:02 3 12 -80 4 1 88 acme/th"; got != want {
		t.Errorf("after a status event: %q, want %q", got, want)
	}
}

// Messages on the error subject count as decode failures of their device: the count adds up,
// the last error is the newest one's (a late failure does not replace it), a long error is
// cut on a rune boundary, and what does not read as a failure is left out.
func TestInventoryCountsFailures(t *testing.T) {
	db := newInventoryDB(t)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	failure := func(at time.Time, msg string) []byte {
		b, err := sluice.EncodeFailure(&sluice.Failure{V: 1, ID: msg, Tenant: "t1", Device: "d9", ReceivedAt: at,
			Decoder: "acme/th", Reason: "decode", Error: msg, Payload: []byte{0xff}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	write := func(data ...[]byte) {
		t.Helper()
		db.write(func(inv *inventory) {
			for _, d := range data {
				inv.fail(d)
			}
		})
	}
	state := func() string {
		t.Helper()
		return db.state("d9", "uplinks, decode_failures, decoder, last_error")
	}
	write(failure(t0, "first"), failure(t0.Add(time.Minute), "second"), []byte("not a failure"))
	if got, want := state(), "10:00 10:01 0 2 acme/th decode: second"; got != want {
		t.Errorf("first batch: %q, want %q", got, want)
	}
	write(failure(t0.Add(-time.Hour), "late"))
	if got, want := state(), "09:00 10:01 0 3 acme/th decode: second"; got != want {
		t.Errorf("after a late failure: %q, want %q", got, want)
	}
	write(failure(t0.Add(2*time.Minute), strings.Repeat("é", 200)))
	var last string
	if err := db.pool.QueryRow(context.Background(), "SELECT last_error FROM devices WHERE device = 'd9'").Scan(&last); err != nil {
		t.Fatal(err)
	}
	if len(last) > maxErrorBytes || !utf8.ValidString(last) || !strings.HasPrefix(last, "decode: éé") {
		t.Errorf("a long error kept as %d bytes %q, want at most %d bytes of valid UTF-8", len(last), last, maxErrorBytes)
	}
}

// inventoryDB is a migrated schema and its writer, for the inventory's tests.
type inventoryDB struct {
	t    *testing.T
	pool *pgxpool.Pool
	w    *writer
}

func newInventoryDB(t *testing.T) *inventoryDB {
	cfg := storageTarget(t)
	pool := testPool(t, cfg)
	migrateOK(t, pool, cfg)
	return &inventoryDB{t: t, pool: pool, w: newWriter(pool, cfg.Schema, cfg.Storage)}
}

// write commits, in one batch's transaction with no rows, the inventory fill makes.
func (d *inventoryDB) write(fill func(*inventory)) {
	d.t.Helper()
	inv := &inventory{}
	fill(inv)
	if _, err := d.w.writeWith(context.Background(), nil, inv); err != nil {
		d.t.Fatal(err)
	}
}

// state is tenant t1's device's first and last seen (HH:MI, UTC) and then cols, space separated.
func (d *inventoryDB) state(device, cols string) string {
	d.t.Helper()
	n := strings.Count(cols, ",") + 3
	var s string
	err := d.pool.QueryRow(context.Background(), `SELECT format('`+strings.TrimSuffix(strings.Repeat("%s ", n), " ")+`',
		to_char(first_seen AT TIME ZONE 'UTC', 'HH24:MI'), to_char(last_seen AT TIME ZONE 'UTC', 'HH24:MI'), `+cols+`)
		FROM devices WHERE tenant = 't1' AND device = $1`, device).Scan(&s)
	if err != nil {
		d.t.Fatal(err)
	}
	return s
}
