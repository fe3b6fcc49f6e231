package transfer

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-iot/sluice/sink"
)

// Plan says what Backfill would do now, one line each, changing nothing: the source and its
// time span, the planner's estimate of the rows, where a stored checkpoint stands, the
// destination's pending migration, the chunking and rate, and the aggregates it would refresh.
func Plan(ctx context.Context, src *Source, dst *sink.Writer, cfg BackfillConfig) ([]string, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tc := dst.Config()
	id := backfillID(src, cfg.Range)
	out := []string{
		fmt.Sprintf("backfill %s: from %s to %s", id, src, describeTarget(tc)),
		"range: " + describeRange(cfg.Range),
	}
	first, last, err := src.span(ctx, cfg.Range)
	if err != nil {
		return nil, err
	}
	est, err := src.estimate(ctx, cfg.Range)
	if err != nil {
		return nil, err
	}
	if first.IsZero() {
		out = append(out, "the source holds no readings in this range")
	} else {
		out = append(out, fmt.Sprintf("the source holds readings from %s to %s, about %d rows (planner estimate)", ts(first), ts(last), est))
	}
	cp, err := readCheckpoint(ctx, dst.Pool(), tc.Schema, id)
	if err != nil {
		return nil, err
	}
	missed := false
	if !cfg.Restart {
		if missed, err = src.typedBefore(ctx, cfg.Range, cp); err != nil {
			return nil, err
		}
	}
	switch {
	case cp == nil:
		out = append(out, "no checkpoint: the copy starts at the beginning of the range")
	case cfg.Restart:
		out = append(out, fmt.Sprintf("--restart: the checkpoint (%d rows read) and its rejects would be forgotten and the copy start again", cp.read))
	case missed:
		out = append(out, fmt.Sprintf("the checkpoint (%d rows read) was stored by a Sluice that copied numbers only and the source holds typed readings it has passed: backfill refuses to resume it; --restart copies again", cp.read))
	case cp.finished:
		out = append(out, fmt.Sprintf("this copy finished (%d rows read, %d new, %d rejected): nothing would be read (--restart copies again)", cp.read, cp.new, cp.rejected))
	default:
		out = append(out, fmt.Sprintf("resumes after %s: %d rows read, %d new, %d rejected so far (last progress %s)",
			describe(cp.pos), cp.read, cp.new, cp.rejected, cp.updated.UTC().Format(time.RFC3339)))
	}
	steps, err := dst.Plan(ctx)
	if err != nil {
		return nil, err
	}
	pending := 0
	for _, s := range steps {
		if len(s) < 3 || s[:3] != "-- " {
			pending++
		}
	}
	if pending > 0 {
		out = append(out, fmt.Sprintf("the destination schema needs migrating first (%d statements; sluice migrate --dry-run shows them); backfill runs them", pending))
	} else {
		out = append(out, "the destination schema is up to date")
	}
	rate := "no rate limit"
	if cfg.Rate > 0 {
		rate = fmt.Sprintf("at most %.0f rows/s", cfg.Rate)
		if est > 0 {
			rate += fmt.Sprintf(" (about %s for the estimate)", (time.Duration(float64(est)/cfg.Rate) * time.Second).Round(time.Second))
		}
	}
	out = append(out, fmt.Sprintf("chunks of %d rows, each with its checkpoint in one transaction of the destination; %s", cfg.Chunk, rate))
	tsdb, err := hasTimescale(ctx, dst.Pool())
	if err != nil {
		return nil, err
	}
	if tsdb {
		names, err := aggregates(ctx, dst.Pool(), tc.Schema)
		if err != nil {
			return nil, err
		}
		if len(names) > 0 {
			out = append(out, fmt.Sprintf("afterwards refreshes %d continuous aggregates over the whole days of the copied range", len(names)))
		}
	}
	out = append(out, fmt.Sprintf("rows that cannot be written go to %s.%s with their reason", tc.Schema, rejectsTable))
	return out, nil
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func describeRange(r Range) string {
	s := "all readings"
	if !r.Since.IsZero() {
		s += " from " + ts(r.Since)
	}
	if !r.Until.IsZero() {
		s += " before " + ts(r.Until)
	}
	if r.Tenant != "" {
		s += " of tenant " + r.Tenant
	}
	return s
}

// CheckClassRules refuses a destination whose schema uses more than the default class when
// the writer has only the default storage rules (a URL rather than a configured target):
// resolving a series with other rules would move it to another class.
func CheckClassRules(ctx context.Context, dst *sink.Writer) error {
	tc := dst.Config()
	if len(tc.Storage.Classes) > 1 || len(tc.Storage.Assign) > 0 {
		return nil
	}
	var exists bool
	reg := pgx.Identifier{tc.Schema, "sluice_classes"}.Sanitize()
	if err := dst.Pool().QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", reg).Scan(&exists); err != nil {
		return fmt.Errorf("read the destination's classes: %w", err)
	}
	if !exists {
		return nil
	}
	rows, err := dst.Pool().Query(ctx, "SELECT name FROM "+reg+" WHERE name <> $1 ORDER BY 1", tc.Storage.DefaultClass)
	if err != nil {
		return fmt.Errorf("read the destination's classes: %w", err)
	}
	others, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read the destination's classes: %w", err)
	}
	if len(others) > 0 {
		return fmt.Errorf("the destination schema %s has the retention classes %s besides %s: give --to the name of its target in the configuration (with --config), so that new series follow its class rules",
			tc.Schema, strings.Join(others, ", "), tc.Storage.DefaultClass)
	}
	return nil
}

// describeTarget names a destination for people: "schema public on host/db".
func describeTarget(tc sink.TargetConfig) string {
	at := "?"
	if pc, err := pgx.ParseConfig(tc.DatabaseURL); err == nil {
		at = where(pc.Host, pc.Database)
	}
	return fmt.Sprintf("schema %s on %s", tc.Schema, at)
}
