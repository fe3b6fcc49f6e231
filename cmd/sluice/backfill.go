package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-iot/sluice/sink"
	"github.com/sluice-iot/sluice/transfer"
)

const backfillUsage = `usage: sluice backfill --from SRC --to DST [--since TIME] [--until TIME] [--tenant T] [flags]
       sluice backfill --from-query SQL --from SRC --to DST …

Copies readings history from SRC into DST through the writer the sink uses: rows already in
DST are skipped, series are created with DST's class rules, latest only moves forward. SRC and
DST are PostgreSQL URLs or target names from the configuration. SRC is a Sluice schema
(--from-schema, default public, for a URL; numbers, texts, booleans and locations, each
series keeping its type), or with --from-query any query on SRC returning time, tenant,
device, metric, value and optionally unit (a legacy table; numbers only).

Stopped or killed at any point, the same command continues after the last committed chunk:
the checkpoint is kept in DST (sluice_backfill), in the transaction of each chunk. Rows that
cannot be written are kept in DST's sluice_backfill_rejects with their reason. TIME is RFC 3339
or a duration before now (720h). On TimescaleDB the continuous aggregates are refreshed over
the copied days at the end.
`

func runBackfill(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sluice backfill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, backfillUsage); fs.PrintDefaults() }
	ep := &endpoints{path: "configs/sluice.yaml"}
	fs.StringVar(&ep.path, "config", ep.path, "configuration `file` (for target names)")
	from := fs.String("from", "", "source: PostgreSQL `URL` or target name")
	to := fs.String("to", "", "destination: PostgreSQL `URL` or target name")
	fromSchema := fs.String("from-schema", "", "Sluice `schema` of a source URL (default public)")
	toSchema := fs.String("to-schema", "", "Sluice `schema` of a destination URL (default public)")
	query := fs.String("from-query", "", "legacy `SQL` returning time, tenant, device, metric, value[, unit]")
	since := fs.String("since", "", "copy readings at or after `TIME`")
	until := fs.String("until", "", "copy readings before `TIME`")
	tenant := fs.String("tenant", "", "copy the readings of this `tenant` only")
	chunk := fs.Int("chunk", transfer.DefaultChunk, "`rows` per chunk (one transaction each)")
	rate := fs.Float64("rate", 0, "read at most `N` rows per second (0: no limit)")
	restart := fs.Bool("restart", false, "forget the checkpoint of this copy and copy again")
	dryRun := fs.Bool("dry-run", false, "print the plan, change nothing")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sluice backfill: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	cfg := transfer.BackfillConfig{Chunk: *chunk, Rate: *rate, Restart: *restart}
	problems := parseRange(&cfg.Range, *since, *until, *tenant)
	if err := cfg.Validate(); err != nil {
		problems = append(problems, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "sluice backfill: %s\n", strings.Join(problems, "; "))
		return exitUsage
	}
	src, ok := ep.target("--from", *from, *fromSchema, stderr)
	if !ok {
		return exitUsage
	}
	dst, ok := ep.target("--to", *to, *toSchema, stderr)
	if !ok {
		return exitUsage
	}
	// History is history: the age limit of live readings does not apply to it.
	dst.Limits.MaxPast = 0
	dst.MaxConns = 2
	log := ep.logger(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	source, err := transfer.OpenSource(ctx, transfer.SourceConfig{URL: src.DatabaseURL, Schema: src.Schema, Query: *query, App: "sluice backfill"})
	if err != nil {
		fmt.Fprintln(stderr, "sluice backfill:", err)
		if errors.Is(err, transfer.ErrQueryColumns) {
			return exitUsage
		}
		return exitFailure
	}
	defer source.Close()
	w, err := sink.NewWriter(dst)
	if err != nil {
		fmt.Fprintln(stderr, "sluice backfill: --to:", err)
		return exitUsage
	}
	defer w.Close()
	if isURL(*to) { // a configured target carries its class rules; a URL has the defaults
		if err := transfer.CheckClassRules(ctx, w); err != nil {
			fmt.Fprintln(stderr, "sluice backfill:", err)
			return exitUsage
		}
	}
	if *dryRun {
		lines, err := transfer.Plan(ctx, source, w, cfg)
		if err != nil {
			fmt.Fprintln(stderr, "sluice backfill:", err)
			return exitFailure
		}
		for _, l := range lines {
			fmt.Fprintln(stdout, l)
		}
		return exitOK
	}
	if _, err := w.Migrate(ctx, log); err != nil {
		fmt.Fprintln(stderr, "sluice backfill: --to:", err)
		return exitFailure
	}
	bar := newCopyProgress(stderr)
	cfg.Progress = bar.update
	rep, err := transfer.Backfill(ctx, source, w, cfg)
	bar.finish()
	switch {
	case err != nil && ctx.Err() != nil:
		fmt.Fprintf(stdout, "backfill %s stopped after %d rows (%d new, %d rejected); run the same command to resume\n",
			rep.ID, rep.Read, rep.New, rep.Rejected)
		return exitFailure
	case err != nil:
		fmt.Fprintf(stderr, "sluice backfill: %v\n(run the same command to resume after the last committed chunk)\n", err)
		return exitFailure
	}
	if rep.AlreadyDone {
		fmt.Fprintf(stdout, "backfill %s had finished before: %d rows read, %d new, %d rejected (--restart copies again)\n",
			rep.ID, rep.Read, rep.New, rep.Rejected)
	} else {
		el := time.Since(rep.Started)
		fmt.Fprintf(stdout, "backfill %s done: %d rows read, %d new, %d rejected; this run %d rows in %s (%.0f rows/s)\n",
			rep.ID, rep.Read, rep.New, rep.Rejected, rep.RunRows, el.Round(time.Millisecond), float64(rep.RunRows)/el.Seconds())
	}
	if rep.Rejected > 0 {
		fmt.Fprintf(stdout, "rejected rows and their reasons: SELECT * FROM %s.sluice_backfill_rejects WHERE backfill = '%s'\n", dst.Schema, rep.ID)
	}
	if len(rep.Refreshed) > 0 {
		fmt.Fprintf(stdout, "refreshed %s from %s to %s\n", strings.Join(rep.Refreshed, ", "),
			rep.RefreshFrom.Format(time.RFC3339), rep.RefreshTo.Format(time.RFC3339))
	}
	return exitOK
}

// copyProgress shows a backfill's progress: a line redrawn in place on a terminal, a plain
// line every few seconds otherwise.
type copyProgress struct {
	p     *progress
	start float64
	begun bool
}

func newCopyProgress(w io.Writer) *copyProgress { return &copyProgress{p: newProgress(w)} }

func (c *copyProgress) update(r transfer.Progress) {
	p := c.p
	if !c.begun {
		c.begun, c.start = true, r.Fraction()
		if r.Resumed {
			fmt.Fprintf(p.w, "resuming backfill %s after %s (%d rows read before)\n", r.ID, r.Position.UTC().Format(time.RFC3339), r.Read)
		}
	}
	if !r.Done && time.Since(p.last) < p.interval {
		return
	}
	p.last = time.Now()
	eta := "-"
	if d := r.ETA(c.start); d > 0 {
		eta = d.Round(time.Second).String()
	}
	at := "-"
	if !r.Position.IsZero() {
		at = r.Position.UTC().Format(time.RFC3339)
	}
	if !p.tty {
		fmt.Fprintf(p.w, "backfill %5.1f%%  at %s  %d rows  %d new  %d rejected  %.0f rows/s  eta %s\n",
			100*r.Fraction(), at, r.Read, r.New, r.Rejected, r.Rate(), eta)
		return
	}
	const width = 30
	n := int(r.Fraction() * width)
	fmt.Fprintf(p.w, "\r[%s%s] %5.1f%%  %s  %d rows  %.0f rows/s  eta %-8s", strings.Repeat("=", n), strings.Repeat(" ", width-n),
		100*r.Fraction(), at, r.Read, r.Rate(), eta)
	p.drawn = true
}

func (c *copyProgress) finish() { c.p.finish() }
