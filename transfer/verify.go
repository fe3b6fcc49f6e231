package transfer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
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

// Figures are one side's aggregates of a series in a bucket.
type Figures struct {
	Count          int64
	Sum, Min, Max  float64
	SumAbs         float64 // sum of |value|: bounds the rounding error of Sum
	Present        bool    // the side has readings in the bucket
	tenant, device string
	metric         string
	bucket         time.Time
}

// Difference is one (tenant, device, metric, bucket) whose figures differ between the sides;
// a side without readings there has Present false.
type Difference struct {
	Tenant, Device, Metric string
	Bucket                 time.Time
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

// Verify compares from and to per (tenant, device, metric, bucket): count, sum, min and max,
// each side aggregated inside its own database and streamed in the same order (names compared
// bytewise), merged here. It calls diff for every difference, in order. Sums are equal when
// they differ by less than float8 rounding can explain for the bucket's readings.
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
			diff(Difference{Tenant: fa.tenant, Device: fa.device, Metric: fa.metric, Bucket: fa.bucket, From: fa})
		case c > 0:
			rep.OnlyTo++
			rep.ToRows += fb.Count
			diff(Difference{Tenant: fb.tenant, Device: fb.device, Metric: fb.metric, Bucket: fb.bucket, To: fb})
		default:
			rep.FromRows += fa.Count
			rep.ToRows += fb.Count
			if !sameFigures(fa, fb) {
				rep.Differ++
				diff(Difference{Tenant: fa.tenant, Device: fa.device, Metric: fa.metric, Bucket: fa.bucket, From: fa, To: fb})
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
	var sum, lo, hi, abs pgtype.Float8
	if err := rows.Scan(&f.tenant, &f.device, &f.metric, &f.bucket, &f.Count, &sum, &lo, &hi, &abs); err != nil {
		return false, fmt.Errorf("aggregate %s: %w", s, err)
	}
	f.Sum, f.Min, f.Max, f.SumAbs, f.Present = sum.Float64, lo.Float64, hi.Float64, abs.Float64, true
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
	return a.bucket.Compare(b.bucket)
}

// sameFigures compares two sides' figures: count, min and max exactly, sums within the
// rounding error recursive summation of the bucket's values can make on each side,
// 2·n·ε·Σ|x| (float8 ε = 2⁻⁵²), whatever order each database added them in.
func sameFigures(a, b Figures) bool {
	if a.Count != b.Count || !sameFloat(a.Min, b.Min) || !sameFloat(a.Max, b.Max) {
		return false
	}
	if sameFloat(a.Sum, b.Sum) {
		return true
	}
	tol := 2 * float64(a.Count) * 0x1p-52 * math.Max(a.SumAbs, b.SumAbs)
	return math.Abs(a.Sum-b.Sum) <= tol
}

func sameFloat(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }

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
		// Grouped by series id first (one integer), named afterwards.
		sql = `SELECT s.tenant, s.device, s.metric, a.bucket, a.n, a.sum, a.min, a.max, a.abs FROM (
	SELECT m.series_id, date_trunc($3::text, m.time, 'UTC') AS bucket, count(*) AS n, sum(m.value) AS sum,
		min(m.value) AS min, max(m.value) AS max, sum(abs(m.value)) AS abs
	FROM ` + s.relation() + ` m
	WHERE m.time >= $1 AND (m.time < $2 OR $2::timestamptz IS NULL)` + tenant + `
	GROUP BY 1, 2) a
JOIN ` + series + ` s ON s.id = a.series_id
ORDER BY s.tenant COLLATE "C", s.device COLLATE "C", s.metric COLLATE "C", a.bucket`
	} else {
		tenant := ""
		if cfg.Tenant != "" {
			tenant = " AND src.tenant = $4::text"
		}
		sql = `SELECT * FROM (SELECT coalesce(src.tenant::text, '') AS tenant, coalesce(src.device::text, '') AS device,
	coalesce(src.metric::text, '') AS metric, date_trunc($3::text, src.time::timestamptz, 'UTC') AS bucket, count(*),
	sum(src.value::float8), min(src.value::float8), max(src.value::float8), sum(abs(src.value::float8))
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
