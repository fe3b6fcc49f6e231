package transfer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-iot/sluice/sink"
)

// aggregates returns the continuous aggregates of schema, qualified and quoted; the
// timescaledb extension must be installed.
func aggregates(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, schema string) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT view_name::text FROM timescaledb_information.continuous_aggregates
WHERE view_schema = $1 ORDER BY 1`, schema)
	if err != nil {
		return nil, fmt.Errorf("list continuous aggregates: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list continuous aggregates: %w", err)
	}
	for i, n := range names {
		names[i] = pgx.Identifier{schema, n}.Sanitize()
	}
	return names, nil
}

// hasTimescale reports whether the timescaledb extension is installed.
func hasTimescale(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')").Scan(&ok)
	return ok, wrap("detect timescaledb", err)
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// refreshWindow is the whole days covering the copied range: a window that covers whole
// buckets of every aggregate (1 hour, 1 day).
func refreshWindow(lo, hi time.Time) (time.Time, time.Time) {
	from := lo.UTC().Truncate(24 * time.Hour)
	to := hi.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	return from, to
}

// refresh brings the destination's continuous aggregates up to date over the range a copy
// wrote, then records that it did. TimescaleDB logs every write below an aggregate's watermark
// as an invalidation that only a refresh over it clears; without this the history would be
// missing from readings_1h/1d until a policy's window reaches it.
func refresh(ctx context.Context, dst *sink.Writer, cp *checkpoint, rep *Report) error {
	pool, schema := dst.Pool(), dst.Config().Schema
	ts, err := hasTimescale(ctx, pool)
	if err != nil {
		return err
	}
	if ts && cp.minTime.Valid && cp.maxTime.Valid {
		names, err := aggregates(ctx, pool, schema)
		if err != nil {
			return err
		}
		from, to := refreshWindow(cp.minTime.Time, cp.maxTime.Time)
		for _, n := range names {
			if err := refreshOne(ctx, dst, n, from, to); err != nil {
				return err
			}
		}
		rep.Refreshed, rep.RefreshFrom, rep.RefreshTo = names, from, to
	}
	_, err = pool.Exec(ctx, "UPDATE "+pgx.Identifier{schema, checkpointTable}.Sanitize()+" SET refreshed_at = now() WHERE id = $1", cp.id)
	return wrap("record the refresh", err)
}

// refreshOne refreshes one aggregate, waiting while a policy refreshes it concurrently
// (SQLSTATE 55P03), up to a few minutes.
func refreshOne(ctx context.Context, dst *sink.Writer, name string, from, to time.Time) error {
	wait := 100 * time.Millisecond
	for deadline := time.Now().Add(3 * time.Minute); ; {
		_, err := dst.Pool().Exec(ctx, "CALL refresh_continuous_aggregate($1::regclass, $2::timestamptz, $3::timestamptz)", name, from, to)
		var pe *pgconn.PgError
		if err == nil || !errors.As(err, &pe) || pe.Code != "55P03" || time.Now().After(deadline) {
			return wrap(fmt.Sprintf("refresh %s from %s to %s", name, from.Format(time.RFC3339), to.Format(time.RFC3339)), err)
		}
		if err := sleepUntil(ctx, time.Now().Add(wait)); err != nil {
			return err
		}
		wait = min(2*wait, 5*time.Second)
	}
}
