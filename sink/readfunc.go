package sink

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// readFunctions returns the statements creating the dashboard read functions of a schema:
//
//	readings_step(tenant, device, metric, since, until, step interval)
//	readings_points(tenant, device, metric, since, until, points integer DEFAULT 500)
//
// Both return (time, value, min, max, count) for one series, one row per step-wide bucket,
// time-ordered: value is the average of the readings in the bucket, min and max their range.
// readings_points divides the range into about points buckets (at most one more). The source follows the
// step, so any range costs about the same: raw rows below an hour, the hourly aggregates below
// a day, the daily ones above; the step is rounded up to whole seconds, hours or days of its
// source. Without continuous aggregates every step reads raw rows of the one series.
//
// The query is built with the series id and the time bounds as literals, so that the planner
// sees constants: TimescaleDB then excludes every chunk outside the range while planning, and
// the series id reaches each class table's (series_id, time) index. Buckets are aligned
// on 2000-01-01 00:00 UTC (date_bin's origin); the first one starts at or before since.
func readFunctions(schema string, classes []string, caggs bool) []step {
	q := func(name string) string { return pgx.Identifier{schema, name}.Sanitize() }
	// branches selects (bucket time, avg, min, max, count) of one source from every class; %1$s
	// is the series id, %2$L and %3$L the bounds, %4$L the step (for raw rows).
	raw := unionAll(classes, "time AS t, value AS avg, value AS min, value AS max, 1::bigint AS count", func(c string) string {
		return classNames{schema, c}.qtable() + " WHERE series_id = %1$s AND time >= %2$L::timestamptz AND time < %3$L::timestamptz"
	})
	query := func(branches string) string {
		return "SELECT date_bin(%4$L::interval, a.t, TIMESTAMPTZ '2000-01-01 00:00:00+00'), sum(a.avg * a.count) / sum(a.count), min(a.min), max(a.max), sum(a.count)::bigint\n" +
			"\t\tFROM (" + branches + ") a GROUP BY 1 ORDER BY 1"
	}
	// The step is rounded the same way with or without aggregates, so that one call returns
	// the same points from either.
	var pick strings.Builder
	for _, b := range []bucket{buckets[1], buckets[0]} {
		branches := raw
		if caggs {
			branches = unionAll(classes, "bucket AS t, avg, min, max, count", func(c string) string {
				return classNames{schema, c}.qcagg(b) + " WHERE series_id = %1$s AND bucket >= %2$L::timestamptz AND bucket < %3$L::timestamptz"
			})
		}
		fmt.Fprintf(&pick, `	IF width >= %[1]s THEN
		width := ceil(extract(epoch FROM width) / %[2]d) * %[1]s;
		RETURN QUERY EXECUTE format($q$%[3]s$q$, sid, date_bin(width, since, origin), until, width);
		RETURN;
	END IF;
`, b.width, int(b.size.Seconds()), query(branches))
	}
	return []step{
		{sql: fmt.Sprintf(`CREATE OR REPLACE FUNCTION %[1]s(tenant text, device text, metric text, since timestamptz, until timestamptz, step interval)
RETURNS TABLE ("time" timestamptz, value double precision, min double precision, max double precision, count bigint)
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
	origin CONSTANT timestamptz := TIMESTAMPTZ '2000-01-01 00:00:00+00';
	sid bigint;
	width interval := coalesce(step, (until - since) / 500);
BEGIN
	IF since IS NULL OR until IS NULL OR until <= since THEN
		RETURN;
	END IF;
	SELECT s.id INTO sid FROM %[2]s s
	WHERE s.tenant = readings_step.tenant AND s.device = readings_step.device AND s.metric = readings_step.metric;
	IF sid IS NULL THEN
		RETURN;
	END IF;
	IF extract(epoch FROM width) < 1 THEN
		width := INTERVAL '1 second';
	END IF;
%[3]s	width := ceil(extract(epoch FROM width)) * INTERVAL '1 second';
	RETURN QUERY EXECUTE format($q$%[4]s$q$, sid, date_bin(width, since, origin), until, width);
END
$fn$`, q("readings_step"), q("series"), pick.String(), query(raw))},
		{sql: fmt.Sprintf(`CREATE OR REPLACE FUNCTION %[1]s(tenant text, device text, metric text, since timestamptz, until timestamptz, points integer DEFAULT 500)
RETURNS TABLE ("time" timestamptz, value double precision, min double precision, max double precision, count bigint)
LANGUAGE sql STABLE AS $fn$
	SELECT * FROM %[2]s(tenant, device, metric, since, until, (until - since) / greatest(points, 1))
$fn$`, q("readings_points"), q("readings_step"))},
	}
}
