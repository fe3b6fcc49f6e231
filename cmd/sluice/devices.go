package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sluice-iot/sluice/sink"
)

const devicesUsage = `usage: sluice devices [--config FILE] [--target NAME] [--tenant TENANT] [--stale DURATION]

Lists the device inventory a target keeps: every device that stored an uplink, when it was first
and last seen, how many uplinks it stored (at least once: a batch redelivered after a crash is
counted again), and its last frame counter, RSSI, SNR, gateway count, battery and decoder.
--stale 1h lists only the devices not seen for an hour or more.

`

func runDevices(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sluice devices", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, devicesUsage)
		fs.PrintDefaults()
	}
	path := configFlag(fs)
	target := fs.String("target", "", "the target `name` whose inventory to list (default: the first target)")
	tenant := fs.String("tenant", "", "list the devices of this `tenant` only")
	stale := fs.Duration("stale", 0, "list only devices not seen for this `duration` or longer (0: all)")
	if err := fs.Parse(args); err != nil {
		return parseFailure(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sluice devices: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *stale < 0 {
		fmt.Fprintf(stderr, "sluice devices: --stale: %s is negative\n", *stale)
		return exitUsage
	}
	cfg, code := loadConfig(*path, stderr)
	if cfg == nil {
		return code
	}
	if len(cfg.Sink.Targets) == 0 {
		fmt.Fprintf(stderr, "sluice devices: %s configures no sink target\n", *path)
		return exitUsage
	}
	tc := cfg.Sink.Targets[0]
	if *target != "" {
		var err error
		if tc, err = findTarget(cfg, *path, *target); err != nil {
			fmt.Fprintln(stderr, "sluice devices:", err)
			return exitUsage
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	devs, err := sink.Devices(ctx, tc, sink.DeviceFilter{Tenant: *tenant, Stale: *stale})
	if err != nil {
		fmt.Fprintln(stderr, "sluice devices:", err)
		return exitFailure
	}
	printDevices(stdout, devs, time.Now())
	return exitOK
}

// printDevices writes devs as a table, ages relative to now.
func printDevices(w io.Writer, devs []sink.Device, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tDEVICE\tLAST SEEN\tAGO\tFIRST SEEN\tUPLINKS\tFAILURES\tFCNT\tRSSI\tSNR\tGATEWAYS\tBATTERY\tDECODER\tLAST ERROR")
	for _, d := range devs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Tenant, d.Device,
			d.LastSeen.UTC().Format(time.RFC3339), ago(now.Sub(d.LastSeen)), d.FirstSeen.UTC().Format(time.RFC3339), d.Uplinks,
			d.DecodeFailures, optInt(d.LastFCnt), optFloat(d.LastRSSI), optFloat(d.LastSNR), optInt32(d.Gateways), optFloat(d.Battery),
			orDash(d.Decoder), orDash(d.LastError))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d %s\n", len(devs), map[bool]string{true: "device", false: "devices"}[len(devs) == 1])
}

func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return d.Truncate(time.Second).String()
	case d < 48*time.Hour:
		return d.Truncate(time.Minute).String()
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func optInt(p *int64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatInt(*p, 10)
}

func optInt32(p *int32) string {
	if p == nil {
		return "-"
	}
	return strconv.Itoa(int(*p))
}

func optFloat(p *float64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'f', -1, 64)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
