package transfer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-iot/sluice"
)

// VerifyConfig says what Verify compares.
type VerifyConfig struct {
	Range
	// By is the bucket width: "hour" or "day".
	By string
}

// Validate reports every problem at once.
func (c VerifyConfig) Validate() error {
	var errs []error
	if c.By != "hour" && c.By != "day" {
		errs = append(errs, fmt.Errorf("by: %q is not hour or day", c.By))
	}
	if !c.Since.IsZero() && !c.Until.IsZero() && !c.Until.After(c.Since) {
		errs = append(errs, errors.New("until: must be after since"))
	}
	return errors.Join(errs...)
}

// Figures are one side's aggregates of a series' readings of one type in a bucket.
type Figures struct {
	Type  sluice.ValueType
	Count int64
	// Numbers: the sum, minimum and maximum, and the sum of |value| that bounds the rounding
	// error of Sum.
	Sum, Min, Max float64
	SumAbs        float64
	// Texts: the sum of the first 32 bits of each value's MD5 (as a signed integer), which
	// changes with any value and not with the order of the rows. Booleans: how many are true.
	Checksum int64
	// Locations: the sums of latitude and longitude, and of their absolute values.
	Lat, Lon, LatAbs, LonAbs float64
	Present                  bool // the side has readings of the type in the bucket
	tenant, device           string
	metric                   string
	bucket                   time.Time
}

// Difference is one (tenant, device, metric, bucket) and value type whose figures differ
// between the sides; a side without readings there has Present false.
type Difference struct {
	Tenant, Device, Metric string
	Bucket                 time.Time
	Type                   sluice.ValueType
	From, To               Figures
}

// VerifyReport sums up a comparison.
type VerifyReport struct {
	Buckets          int64 // (series, bucket) pairs seen on either side
	Differ           int64 // present on both sides with different figures
	OnlyFrom, OnlyTo int64 // present on one side only
	FromRows, ToRows int64
}

// Equal reports whether the two sides hold the same readings.
func (r VerifyReport) Equal() bool { return r.Differ == 0 && r.OnlyFrom == 0 && r.OnlyTo == 0 }

// Verify compares from and to per (tenant, device, metric, bucket) and value type: for numbers
// count, sum, min and max; for texts count and a checksum of the values; for booleans count and
// how many are true; for locations count and the sums of latitude and longitude. Each side is
// aggregated inside its own database and streamed in the same order (names compared bytewise),
// merged here. It calls diff for every difference, in order. Sums are equal when they differ by
// less than float8 rounding can explain for the bucket's readings.
func Verify(ctx context.Context, from, to *Source, cfg VerifyConfig, diff func(Difference)) (VerifyReport, error) {
	var rep VerifyReport
	if err := cfg.Validate(); err != nil {
		return rep, err
	}
	a, err := from.buckets(ctx, cfg)
	if err != nil {
		return rep, err
	}
	defer a.Close()
	b, err := to.buckets(ctx, cfg)
	if err != nil {
		return rep, err
	}
	defer b.Close()
	var fa, fb Figures
	okA, err := next(a, &fa, from)
	if err != nil {
		return rep, err
	}
	okB, err := next(b, &fb, to)
	if err != nil {
		return rep, err
	}
	for okA || okB {
		rep.Buckets++
		c := 0
		switch {
		case !okA:
			c = 1
		case !okB:
			c = -1
		default:
			c = compareKeys(&fa, &fb)
		}
		switch {
		case c < 0:
			rep.OnlyFrom++
			rep.FromRows += fa.Count
			diff(Difference{Tenant: fa.tenant, Device: fa.device, Metric: fa.metric, Bucket: fa.bucket, Type: fa.Type, From: fa})
		case c > 0:
			rep.OnlyTo++
			rep.ToRows += fb.Count
			diff(Difference{Tenant: fb.tenant, Device: fb.device, Metric: fb.metric, Bucket: fb.bucket, Type: fb.Type, To: fb})
		default:
			rep.FromRows += fa.Count
			rep.ToRows += fb.Count
			if !sameFigures(fa, fb) {
				rep.Differ++
				diff(Difference{Tenant: fa.tenant, Device: fa.device, Metric: fa.metric, Bucket: fa.bucket, Type: fa.Type, From: fa, To: fb})
			}
		}
		if c <= 0 {
			if okA, err = next(a, &fa, from); err != nil {
				return rep, err
			}
		}
		if c >= 0 {
			if okB, err = next(b, &fb, to); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

func next(rows pgx.Rows, f *Figures, s *Source) (bool, error) {
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return false, fmt.Errorf("aggregate %s: %w", s, err)
		}
		return false, nil
	}
	var sum, lo, hi, abs, lat, lon, latAbs, lonAbs pgtype.Float8
	var check pgtype.Int8
	var typ string
	if err := rows.Scan(&f.tenant, &f.device, &f.metric, &f.bucket, &typ, &f.Count, &sum, &lo, &hi, &abs, &check, &lat, &lon, &latAbs, &lonAbs); err != nil {
		return false, fmt.Errorf("aggregate %s: %w", s, err)
	}
	*f = Figures{Type: sluice.ValueType(typ), Count: f.Count, Sum: sum.Float64, Min: lo.Float64, Max: hi.Float64, SumAbs: abs.Float64,
		Checksum: check.Int64, Lat: lat.Float64, Lon: lon.Float64, LatAbs: latAbs.Float64, LonAbs: lonAbs.Float64, Present: true,
		tenant: f.tenant, device: f.device, metric: f.metric, bucket: f.bucket}
	return true, nil
}

func compareKeys(a, b *Figures) int {
	if c := strings.Compare(a.tenant, b.tenant); c != 0 {
		return c
	}
	if c := strings.Compare(a.device, b.device); c != 0 {
		return c
	}
	if c := strings.Compare(a.metric, b.metric); c != 0 {
		return c
	}
	if c := a.bucket.Compare(b.bucket); c != 0 {
		return c
	}
	return cmp.Compare(typeOrder(a.Type), typeOrder(b.Type))
}

// typeOrder is the order of value types in the aggregation's output (its "order" column).
func typeOrder(t sluice.ValueType) int {
	for i, p := range tablePrefixes {
		if p.typ == t {
			return i
		}
	}
	return len(tablePrefixes)
}

// sameFigures compares two sides' figures of one type: counts, minima, maxima and checksums
// exactly, sums within the rounding error recursive summation of the bucket's values can make
// on each side, 2·n·ε·Σ|x| (float8 ε = 2⁻⁵²), whatever order each database added them in.
func sameFigures(a, b Figures) bool {
	if a.Count != b.Count || a.Checksum != b.Checksum || !sameFloat(a.Min, b.Min) || !sameFloat(a.Max, b.Max) {
		return false
	}
	return sameSum(a.Count, a.Sum, b.Sum, a.SumAbs, b.SumAbs) && sameSum(a.Count, a.Lat, b.Lat, a.LatAbs, b.LatAbs) &&
		sameSum(a.Count, a.Lon, b.Lon, a.LonAbs, b.LonAbs)
}

func sameSum(n int64, a, b, absA, absB float64) bool {
	if sameFloat(a, b) {
		return true
	}
	return math.Abs(a-b) <= 2*float64(n)*0x1p-52*math.Max(absA, absB)
}

func sameFloat(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }

// typeAggs are, per value type, the aggregates of a bucket over relationOf's columns: sum, min,
// max, abs, chk, lat, lon, lat_abs, lon_abs, those a type does not use NULL.
var typeAggs = map[sluice.ValueType]string{
	sluice.TypeNumber: `sum(m.value) AS sum, min(m.value) AS min, max(m.value) AS max, sum(abs(m.value)) AS abs,
		NULL::bigint AS chk, NULL::float8 AS lat, NULL::float8 AS lon, NULL::float8 AS lat_abs, NULL::float8 AS lon_abs`,
	// The first 32 bits of MD5 are the same in every PostgreSQL version and collation; their sum
	// as signed integers does not depend on the order of the rows.
	sluice.TypeText: `NULL::float8, NULL::float8, NULL::float8, NULL::float8,
		sum(('x' || left(md5(m.text), 8))::bit(32)::int)::bigint, NULL::float8, NULL::float8, NULL::float8, NULL::float8`,
	sluice.TypeBool: `NULL::float8, NULL::float8, NULL::float8, NULL::float8,
		count(*) FILTER (WHERE m.flag), NULL::float8, NULL::float8, NULL::float8, NULL::float8`,
	sluice.TypeLocation: `NULL::float8, NULL::float8, NULL::float8, NULL::float8, NULL::bigint,
		sum(m.lat), sum(m.lon), sum(abs(m.lat)), sum(abs(m.lon))`,
}

// buckets runs the aggregation of one side, ordered by tenant, device, metric (bytewise) and
// bucket.
func (s *Source) buckets(ctx context.Context, cfg VerifyConfig) (pgx.Rows, error) {
	var sql string
	if s.schema != "" {
		series := pgx.Identifier{s.schema, "series"}.Sanitize()
		tenant := ""
		if cfg.Tenant != "" {
			tenant = " AND m.series_id IN (SELECT id FROM " + series + " WHERE tenant = $4::text)"
		}
		// Per type, grouped by series id first (one integer), named afterwards.
		parts := make([]string, 0, len(tablePrefixes))
		for ord, p := range tablePrefixes {
			var tables []srcTable
			for _, t := range s.tables {
				if t.typ == p.typ {
					tables = append(tables, t)
				}
			}
			if len(tables) == 0 {
				continue
			}
			parts = append(parts, `SELECT m.series_id, date_trunc($3::text, m.time, 'UTC') AS bucket, '`+string(p.typ)+`'::text AS type,
		`+strconv.Itoa(ord)+` AS ord, count(*) AS n, `+typeAggs[p.typ]+`
	FROM `+relationOf(tables)+`
	WHERE m.time >= $1 AND (m.time < $2 OR $2::timestamptz IS NULL)`+tenant+`
	GROUP BY 1, 2`)
		}
		sql = `SELECT s.tenant, s.device, s.metric, a.bucket, a.type, a.n, a.sum, a.min, a.max, a.abs, a.chk, a.lat, a.lon, a.lat_abs, a.lon_abs FROM (
	` + strings.Join(parts, "\nUNION ALL\n") + `) a
JOIN ` + series + ` s ON s.id = a.series_id
ORDER BY s.tenant COLLATE "C", s.device COLLATE "C", s.metric COLLATE "C", a.bucket, a.ord`
	} else {
		tenant := ""
		if cfg.Tenant != "" {
			tenant = " AND src.tenant = $4::text"
		}
		sql = `SELECT * FROM (SELECT coalesce(src.tenant::text, '') AS tenant, coalesce(src.device::text, '') AS device,
	coalesce(src.metric::text, '') AS metric, date_trunc($3::text, src.time::timestamptz, 'UTC') AS bucket, ''::text, count(*),
	sum(src.value::float8), min(src.value::float8), max(src.value::float8), sum(abs(src.value::float8)),
	NULL::bigint, NULL::float8, NULL::float8, NULL::float8, NULL::float8
FROM (` + s.query + `) src
WHERE src.time >= $1::timestamptz AND (src.time < $2::timestamptz OR $2::timestamptz IS NULL) AND isfinite(src.time) AND src.value IS NOT NULL` + tenant + `
GROUP BY 1, 2, 3, 4) a
ORDER BY a.tenant COLLATE "C", a.device COLLATE "C", a.metric COLLATE "C", a.bucket`
	}
	args := []any{lowerBound(cfg.Range), upperBound(cfg.Range), cfg.By}
	if cfg.Tenant != "" {
		args = append(args, cfg.Tenant)
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("aggregate %s: %w", s, err)
	}
	return rows, nil
}
