package sink

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-iot/sluice"
)

// inventory is what one batch tells about its devices, one entry per (tenant, device): the
// writer upserts the devices table with it in the batch's transaction, one row per device.
type inventory struct {
	index map[[2]string]int
	devs  []deviceSeen
}

// deviceSeen is what a batch saw of one device. The radio and battery fields are those of the
// device's newest uplink in the batch that carried them (zero time: none did).
type deviceSeen struct {
	tenant, device string
	first, last    time.Time // received_at of the oldest and newest uplink
	uplinks        int64
	decoder        string // of the newest uplink
	fcnt           int64
	fcntAt         time.Time
	rssi, snr      float64
	rssiAt, snrAt  time.Time
	gateways       int32
	gatewaysAt     time.Time
	battery        float64
	batteryAt      time.Time
	failures       int64     // messages not decoded (sluice.err.>)
	failedAt       time.Time // received_at of the newest of them
	lastError      string    // its reason and error
}

func (inv *inventory) reset() {
	clear(inv.index)
	inv.devs = inv.devs[:0]
}

func (inv *inventory) len() int { return len(inv.devs) }

// note records u, a stored message. Status and location events (decoder "<format>:status",
// "<format>:location") update the last seen time and the battery but are not uplinks.
func (inv *inventory) note(u *sluice.Uplink) {
	if u.Tenant == "" || u.Device == "" {
		return
	}
	at := u.ReceivedAt
	if at.IsZero() {
		for i := range u.Readings {
			if t := u.Readings[i].Time; t.After(at) {
				at = t
			}
		}
	}
	if at.IsZero() {
		return
	}
	d := inv.device(u.Tenant, u.Device, at)
	event := strings.HasSuffix(u.Decoder, ":status") || strings.HasSuffix(u.Decoder, ":location")
	if !event {
		d.uplinks++
		if !at.Before(d.last) || d.decoder == "" {
			d.decoder = u.Decoder
		}
	}
	d.first, d.last = minTimeOf(d.first, at), maxTimeOf(d.last, at)
	if u.FCnt != nil && !at.Before(d.fcntAt) {
		d.fcnt, d.fcntAt = int64(*u.FCnt), at
	}
	for j := range u.Readings {
		r := &u.Readings[j]
		if r.Type != sluice.TypeNumber || math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
			continue
		}
		switch r.Metric {
		case "lora.rssi":
			if !at.Before(d.rssiAt) {
				d.rssi, d.rssiAt = r.Value, at
			}
		case "lora.snr":
			if !at.Before(d.snrAt) {
				d.snr, d.snrAt = r.Value, at
			}
		case "lora.gateways":
			if !at.Before(d.gatewaysAt) && r.Value >= 0 && r.Value <= math.MaxInt32 {
				d.gateways, d.gatewaysAt = int32(r.Value), at
			}
		case "lora.fcnt":
			if u.FCnt == nil && !at.Before(d.fcntAt) && r.Value >= 0 && r.Value <= math.MaxUint32 {
				d.fcnt, d.fcntAt = int64(r.Value), at
			}
		case "battery", "lora.battery":
			if !at.Before(d.batteryAt) {
				d.battery, d.batteryAt = r.Value, at
			}
		}
	}
}

// device returns the entry of (tenant, device), made on first use as seen at at.
func (inv *inventory) device(tenant, device string, at time.Time) *deviceSeen {
	if inv.index == nil {
		inv.index = map[[2]string]int{}
	}
	k := [2]string{tenant, device}
	i, ok := inv.index[k]
	if !ok {
		i = len(inv.devs)
		inv.index[k] = i
		inv.devs = append(inv.devs, deviceSeen{tenant: tenant, device: device, first: at, last: at})
	}
	return &inv.devs[i]
}

// maxErrorBytes bounds the last error kept per device.
const maxErrorBytes = 200

// fail records data, a message on the error subject (sluice.Failure): the device was heard
// but nothing of it decoded. A message that does not read as a failure is left out: it stays
// on its subject for `sluice replay --errors`, which is where it is dealt with.
func (inv *inventory) fail(data []byte) {
	f, err := sluice.DecodeFailure(data)
	if err != nil || f.Tenant == "" || f.Device == "" || f.ReceivedAt.IsZero() {
		return
	}
	d := inv.device(f.Tenant, f.Device, f.ReceivedAt)
	d.failures++
	d.first, d.last = minTimeOf(d.first, f.ReceivedAt), maxTimeOf(d.last, f.ReceivedAt)
	if !f.ReceivedAt.Before(d.failedAt) {
		d.failedAt = f.ReceivedAt
		d.lastError = strings.ToValidUTF8(truncate(f.Reason+": "+f.Error, maxErrorBytes), "")
	}
	if d.decoder == "" {
		d.decoder = f.Decoder
	}
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func minTimeOf(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTimeOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// upsertDevices moves each device's row forward: first and last seen widen, uplinks and
// decode failures add up, and the last fCnt, RSSI, SNR, gateway count, battery, error and
// decoder are replaced only by newer ones (a replayed or late batch never rewinds them). Devices go in key order so that
// concurrent batches lock rows in the same order.
const upsertDevices = `
INSERT INTO %[1]s AS d (tenant, device, first_seen, last_seen, uplinks, decoder,
	last_fcnt, fcnt_at, last_rssi, rssi_at, last_snr, snr_at, gateways, gateways_at, battery, battery_at,
	decode_failures, last_failure_at, last_error)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::bigint[], $6::text[],
	$7::bigint[], $8::timestamptz[], $9::float8[], $10::timestamptz[], $11::float8[], $12::timestamptz[],
	$13::int[], $14::timestamptz[], $15::float8[], $16::timestamptz[], $17::bigint[], $18::timestamptz[], $19::text[])
ORDER BY 1, 2
ON CONFLICT (tenant, device) DO UPDATE SET
	first_seen = least(d.first_seen, EXCLUDED.first_seen),
	last_seen = greatest(d.last_seen, EXCLUDED.last_seen),
	uplinks = d.uplinks + EXCLUDED.uplinks,
	decoder = CASE WHEN EXCLUDED.decoder <> '' AND EXCLUDED.last_seen >= d.last_seen THEN EXCLUDED.decoder ELSE d.decoder END,
	last_fcnt = CASE WHEN EXCLUDED.fcnt_at >= d.fcnt_at OR d.fcnt_at IS NULL THEN coalesce(EXCLUDED.last_fcnt, d.last_fcnt) ELSE d.last_fcnt END,
	fcnt_at = greatest(d.fcnt_at, EXCLUDED.fcnt_at),
	last_rssi = CASE WHEN EXCLUDED.rssi_at >= d.rssi_at OR d.rssi_at IS NULL THEN coalesce(EXCLUDED.last_rssi, d.last_rssi) ELSE d.last_rssi END,
	rssi_at = greatest(d.rssi_at, EXCLUDED.rssi_at),
	last_snr = CASE WHEN EXCLUDED.snr_at >= d.snr_at OR d.snr_at IS NULL THEN coalesce(EXCLUDED.last_snr, d.last_snr) ELSE d.last_snr END,
	snr_at = greatest(d.snr_at, EXCLUDED.snr_at),
	gateways = CASE WHEN EXCLUDED.gateways_at >= d.gateways_at OR d.gateways_at IS NULL THEN coalesce(EXCLUDED.gateways, d.gateways) ELSE d.gateways END,
	gateways_at = greatest(d.gateways_at, EXCLUDED.gateways_at),
	battery = CASE WHEN EXCLUDED.battery_at >= d.battery_at OR d.battery_at IS NULL THEN coalesce(EXCLUDED.battery, d.battery) ELSE d.battery END,
	battery_at = greatest(d.battery_at, EXCLUDED.battery_at),
	decode_failures = d.decode_failures + EXCLUDED.decode_failures,
	last_error = CASE WHEN EXCLUDED.last_failure_at >= d.last_failure_at OR d.last_failure_at IS NULL THEN coalesce(EXCLUDED.last_error, d.last_error) ELSE d.last_error END,
	last_failure_at = greatest(d.last_failure_at, EXCLUDED.last_failure_at),
	updated_at = now()`

// store upserts inv into the devices table in tx when it holds devices (inv may be nil).
func (inv *inventory) store(ctx context.Context, tx pgx.Tx, table string) error {
	if inv == nil || inv.len() == 0 {
		return nil
	}
	return inv.upsert(ctx, tx, table)
}

// upsert writes inv into the devices table in tx, in one statement.
func (inv *inventory) upsert(ctx context.Context, tx pgx.Tx, table string) error {
	n := len(inv.devs)
	var (
		tenants, devices, decoders                    = make([]string, n), make([]string, n), make([]string, n)
		firsts, lasts                                 = make([]time.Time, n), make([]time.Time, n)
		uplinks                                       = make([]int64, n)
		fcnts                                         = make([]*int64, n)
		rssis, snrs, batteries                        = make([]*float64, n), make([]*float64, n), make([]*float64, n)
		gateways                                      = make([]*int32, n)
		fcntAt, rssiAt, snrAt, gatewaysAt, batteryAts = make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n)
		failures                                      = make([]int64, n)
		failedAt                                      = make([]*time.Time, n)
		lastErrors                                    = make([]*string, n)
	)
	some := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	for i := range inv.devs {
		d := &inv.devs[i]
		tenants[i], devices[i], decoders[i] = d.tenant, d.device, d.decoder
		firsts[i], lasts[i], uplinks[i] = d.first, d.last, d.uplinks
		if fcntAt[i] = some(d.fcntAt); fcntAt[i] != nil {
			fcnts[i] = &d.fcnt
		}
		if rssiAt[i] = some(d.rssiAt); rssiAt[i] != nil {
			rssis[i] = &d.rssi
		}
		if snrAt[i] = some(d.snrAt); snrAt[i] != nil {
			snrs[i] = &d.snr
		}
		if gatewaysAt[i] = some(d.gatewaysAt); gatewaysAt[i] != nil {
			gateways[i] = &d.gateways
		}
		if batteryAts[i] = some(d.batteryAt); batteryAts[i] != nil {
			batteries[i] = &d.battery
		}
		failures[i] = d.failures
		if failedAt[i] = some(d.failedAt); failedAt[i] != nil {
			lastErrors[i] = &d.lastError
		}
	}
	_, err := tx.Exec(ctx, fmt.Sprintf(upsertDevices, table), tenants, devices, firsts, lasts, uplinks, decoders,
		fcnts, fcntAt, rssis, rssiAt, snrs, snrAt, gateways, gatewaysAt, batteries, batteryAts, failures, failedAt, lastErrors)
	if err != nil {
		return fmt.Errorf("update the inventory of %d devices: %w", n, err)
	}
	return nil
}

// Device is one row of the device inventory.
type Device struct {
	Tenant, Device      string
	FirstSeen, LastSeen time.Time
	Uplinks             int64
	Decoder             string
	LastFCnt            *int64
	LastRSSI, LastSNR   *float64
	Gateways            *int32
	Battery             *float64
	BatteryAt           *time.Time
	DecodeFailures      int64
	LastFailureAt       *time.Time
	LastError           string
}

// DeviceFilter selects devices: of one tenant ("" for all), and not seen for at least Stale
// (0 for all).
type DeviceFilter struct {
	Tenant string
	Stale  time.Duration
}

// Devices lists the inventory of a target's schema, by tenant and device.
func Devices(ctx context.Context, cfg TargetConfig, f DeviceFilter) ([]Device, error) {
	pool, err := newPool(cfg.DatabaseURL, cfg.Schema, 1)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	rows, err := pool.Query(ctx, `SELECT tenant, device, first_seen, last_seen, uplinks, decoder, last_fcnt, last_rssi, last_snr, gateways, battery, battery_at,
	decode_failures, last_failure_at, coalesce(last_error, '')
FROM `+pgx.Identifier{cfg.Schema, "devices"}.Sanitize()+`
WHERE ($1 = '' OR tenant = $1) AND ($2 = 0 OR last_seen < now() - make_interval(secs => $2))
ORDER BY tenant, device`, f.Tenant, f.Stale.Seconds())
	if err != nil {
		return nil, fmt.Errorf("list devices of target %s: %w", cfg.Name, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Device, error) {
		var d Device
		err := r.Scan(&d.Tenant, &d.Device, &d.FirstSeen, &d.LastSeen, &d.Uplinks, &d.Decoder, &d.LastFCnt, &d.LastRSSI, &d.LastSNR, &d.Gateways, &d.Battery, &d.BatteryAt,
			&d.DecodeFailures, &d.LastFailureAt, &d.LastError)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("list devices of target %s: %w", cfg.Name, err)
	}
	return slices.Clip(out), nil
}
