package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/transfer"
)

const verifyUsage = `usage: sluice verify --from SRC --to DST [--since TIME] [--until TIME] [--tenant T] [--by hour|day]

Compares the readings of two databases per (tenant, device, metric, bucket), aggregated
inside each database: for numbers count, sum, min and max; for text, boolean and location
readings count and a checksum (of the texts' MD5s, the trues, the coordinates' sums). Prints every bucket that differs with both sides'
figures, then a summary. SRC and DST are PostgreSQL URLs or target names from the
configuration; with --from-query, SRC is a legacy query as in sluice backfill.

Exit status: 0 when the two sides hold the same readings, 1 when they differ, 2 on a usage or
connection error.
`

func runVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sluice verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, verifyUsage); fs.PrintDefaults() }
	ep := &endpoints{path: "configs/sluice.yaml"}
	fs.StringVar(&ep.path, "config", ep.path, "configuration `file` (for target names)")
	from := fs.String("from", "", "one side: PostgreSQL `URL` or target name")
	to := fs.String("to", "", "the other side: PostgreSQL `URL` or target name")
	fromSchema := fs.String("from-schema", "", "Sluice `schema` of a --from URL (default public)")
	toSchema := fs.String("to-schema", "", "Sluice `schema` of a --to URL (default public)")
	query := fs.String("from-query", "", "legacy `SQL` on --from returning time, tenant, device, metric, value[, unit]")
	since := fs.String("since", "", "compare readings at or after `TIME`")
	until := fs.String("until", "", "compare readings before `TIME`")
	tenant := fs.String("tenant", "", "compare the readings of this `tenant` only")
	by := fs.String("by", "hour", "bucket width: hour or day")
	max := fs.Int("max", 0, "print at most `N` differences (0: all); the summary counts them all")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sluice verify: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	cfg := transfer.VerifyConfig{By: *by}
	problems := parseRange(&cfg.Range, *since, *until, *tenant)
	if err := cfg.Validate(); err != nil {
		problems = append(problems, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "sluice verify: %s\n", strings.Join(problems, "; "))
		return exitUsage
	}
	a, ok := ep.target("--from", *from, *fromSchema, stderr)
	if !ok {
		return exitUsage
	}
	b, ok := ep.target("--to", *to, *toSchema, stderr)
	if !ok {
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	left, err := transfer.OpenSource(ctx, transfer.SourceConfig{URL: a.DatabaseURL, Schema: a.Schema, Query: *query, App: "sluice verify"})
	if err != nil {
		fmt.Fprintln(stderr, "sluice verify: --from:", err)
		return exitUsage
	}
	defer left.Close()
	right, err := transfer.OpenSource(ctx, transfer.SourceConfig{URL: b.DatabaseURL, Schema: b.Schema, App: "sluice verify"})
	if err != nil {
		fmt.Fprintln(stderr, "sluice verify: --to:", err)
		return exitUsage
	}
	defer right.Close()

	start := time.Now()
	printed := 0
	rep, err := transfer.Verify(ctx, left, right, cfg, func(d transfer.Difference) {
		if *max > 0 && printed >= *max {
			return
		}
		printed++
		fmt.Fprintln(stdout, formatDifference(d, cfg.By))
	})
	if err != nil {
		fmt.Fprintln(stderr, "sluice verify:", err)
		return exitUsage
	}
	if n := rep.Differ + rep.OnlyFrom + rep.OnlyTo; int64(printed) < n {
		fmt.Fprintf(stdout, "… %d more differences not printed (--max %d)\n", n-int64(printed), *max)
	}
	verdict := "EQUAL"
	if !rep.Equal() {
		verdict = "DIFFERENT"
	}
	fmt.Fprintf(stdout, "%s: %d series-%ss compared in %s; from %s: %d readings; to %s: %d readings; %d differ, %d only in from, %d only in to\n",
		verdict, rep.Buckets, cfg.By, time.Since(start).Round(time.Millisecond), left, rep.FromRows, right, rep.ToRows, rep.Differ, rep.OnlyFrom, rep.OnlyTo)
	if !rep.Equal() {
		return exitFailure
	}
	return exitOK
}

// formatDifference prints one differing bucket: the series, the bucket, and both sides'
// figures ("-" for a side without readings there).
func formatDifference(d transfer.Difference, by string) string {
	layout := "2006-01-02T15:04Z"
	if by == "day" {
		layout = "2006-01-02"
	}
	kind := "differs"
	switch {
	case !d.To.Present:
		kind = "missing in to"
	case !d.From.Present:
		kind = "missing in from"
	}
	if d.Type != sluice.TypeNumber { // numbers are printed as they were before typed values
		kind = d.Type.Name() + " " + kind
	}
	return fmt.Sprintf("%s/%s/%s %s %s: from %s; to %s", d.Tenant, d.Device, d.Metric, d.Bucket.UTC().Format(layout), kind,
		figures(d.From), figures(d.To))
}

func figures(f transfer.Figures) string {
	if !f.Present {
		return "-"
	}
	g := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	switch f.Type {
	case sluice.TypeText:
		return fmt.Sprintf("count=%d md5sum=%d", f.Count, f.Checksum)
	case sluice.TypeBool:
		return fmt.Sprintf("count=%d true=%d", f.Count, f.Checksum)
	case sluice.TypeLocation:
		return fmt.Sprintf("count=%d lat_sum=%s lon_sum=%s", f.Count, g(f.Lat), g(f.Lon))
	}
	return fmt.Sprintf("count=%d sum=%s min=%s max=%s", f.Count, g(f.Sum), g(f.Min), g(f.Max))
}
