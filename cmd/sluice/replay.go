package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/decoders"
	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/sink"
)

const replayUsage = `usage: sluice replay --target NAME (--since TIME [--until TIME] | --all) [--errors]

Re-delivers the history retained in the buffer to one target. Rows already there are skipped,
so a replay is safe to repeat. Stopped (Ctrl-C) or killed, the same command resumes where it
stopped. TIME is RFC 3339 (2026-01-02T15:04:05Z) or a duration before now (90m, 24h); it
selects messages by when the buffer stored them. With --errors, the stored decode failures are
decoded again with the current decoders and the readings of those that now decode are written.

The buffer must not be open elsewhere: with an embedded buffer, stop the site first, or give
it nats.listen so that replay connects to it while it runs.
`

func runReplay(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sluice replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, replayUsage); fs.PrintDefaults() }
	path := configFlag(fs)
	target := fs.String("target", "", "the target `name` to replay to")
	since := fs.String("since", "", "replay messages stored at or after `TIME`")
	until := fs.String("until", "", "and not after `TIME`")
	all := fs.Bool("all", false, "replay all retained history")
	errs := fs.Bool("errors", false, "decode the stored decode failures again and write those that now decode")
	if err := fs.Parse(args); err != nil {
		return parseFailure(err)
	}
	now := time.Now()
	var o sink.ReplayOptions
	var problems []string
	if *target == "" {
		problems = append(problems, "--target: required")
	}
	if *all == (*since != "") {
		problems = append(problems, "give either --all or --since")
	}
	if *all && *until != "" {
		problems = append(problems, "--until needs --since")
	}
	var err error
	if o.Since, err = parseWhen(*since, now); err != nil {
		problems = append(problems, "--since: "+err.Error())
	}
	if o.Until, err = parseWhen(*until, now); err != nil {
		problems = append(problems, "--until: "+err.Error())
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "sluice replay: %s\n\n%s", strings.Join(problems, "; "), replayUsage)
		return exitUsage
	}
	o.All, o.Errors = *all, *errs

	cfg, code := loadConfig(*path, stderr)
	if cfg == nil {
		return code
	}
	if _, err := findTarget(cfg, *path, *target); err != nil {
		fmt.Fprintln(stderr, "sluice replay:", err)
		return exitUsage
	}
	if cfg.NATS, err = replayBuffer(cfg); err != nil {
		fmt.Fprintln(stderr, "sluice replay:", err)
		return exitFailure
	}
	log := edge.NewLogger(cfg.Log, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rp, err := edge.NewReplay(*cfg, *target, o.Errors, log) // the site's decoders, as now on disk
	if err != nil {
		fmt.Fprintln(stderr, "sluice replay:", err)
		return exitUsage
	}
	defer rp.Close()
	if err := rp.Open(ctx); err != nil {
		fmt.Fprintln(stderr, "sluice replay:", err)
		return exitFailure
	}
	if o.Errors {
		o.Redecode = redecoder(rp.Decoders)
	}
	bar := newProgress(stderr)
	o.Progress = bar.update
	p, err := rp.Target.Replay(ctx, o)
	bar.finish()
	switch {
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(stdout, "replay to %s stopped at %.1f%% (%d messages, %d new rows); run the same command to resume\n",
			*target, 100*p.Fraction, p.Messages, p.Rows)
		return exitFailure
	case err != nil:
		fmt.Fprintln(stderr, "sluice replay:", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "replay to %s done: %d messages, %d new rows", *target, p.Messages, p.Rows)
	if o.Errors {
		fmt.Fprintf(stdout, ", %d failures still do not decode", p.Failed)
	}
	fmt.Fprintln(stdout)
	return exitOK
}

// parseWhen reads an RFC 3339 time or a duration before now; "" is the zero time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-01-02T15:04:05Z) nor a duration (24h)", s)
}

// replayBuffer is how replay reaches the buffer. An embedded buffer's files may be opened by
// one process only: while the site runs, replay connects to its nats.listen port instead.
func replayBuffer(cfg *edge.Config) (sink.BufferConfig, error) {
	b := cfg.NATS
	if b.URL != "" || !siteAnswers(cfg.HTTP.Address) {
		return b, nil
	}
	if b.Listen == "" {
		return b, fmt.Errorf("a site is running on %s with the embedded buffer of %s; stop it, or set nats.listen so that replay can connect to it", cfg.HTTP.Address, cfg.DataDir)
	}
	b.URL, b.Listen = "nats://"+b.Listen, ""
	return b, nil
}

func siteAnswers(addr string) bool {
	if addr == "" {
		return false
	}
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// redecoder decodes a stored failure again with the decoder that failed on it.
func redecoder(set *decoders.Set) func(context.Context, *sluice.Failure) (*sluice.Uplink, error) {
	return func(ctx context.Context, f *sluice.Failure) (*sluice.Uplink, error) {
		d, ok := set.Lookup(f.Decoder)
		if !ok {
			return nil, fmt.Errorf("decoder %q is unknown", f.Decoder)
		}
		out, err := d.Decode(ctx, &decoders.Input{Bytes: f.Payload, RecvTime: f.ReceivedAt, Tenant: f.Tenant, Device: f.Device})
		if err != nil {
			return nil, err
		}
		return &sluice.Uplink{
			V: sluice.WireVersion, ID: f.ID, Tenant: f.Tenant, Device: f.Device, Topic: f.Topic, ReceivedAt: f.ReceivedAt,
			Decoder: d.Name(), Data: out.Data, Readings: out.Readings, Warnings: out.Warnings,
		}, nil
	}
}
