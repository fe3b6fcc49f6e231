package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/sink"
)

// runStatus prints the delivery state of a running site, read from its admin listener.
func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sluice status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	addr := fs.String("addr", "", "admin listener `host:port` (default: http.address of the config)")
	asJSON := fs.Bool("json", false, "print the JSON of /status")
	if err := fs.Parse(args); err != nil {
		return parseFailure(err)
	}
	if *addr == "" {
		cfg, code := loadConfig(*path, stderr)
		if cfg == nil {
			return code
		}
		if *addr = cfg.HTTP.Address; *addr == "" {
			fmt.Fprintln(stderr, "sluice status: http.address is empty: the site has no admin listener to ask (or give --addr)")
			return exitUsage
		}
	}
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + *addr + "/status")
	if err != nil {
		fmt.Fprintf(stderr, "sluice status: no site answers at %s: %v\n", *addr, err)
		return exitFailure
	}
	defer resp.Body.Close()
	var st edge.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		fmt.Fprintf(stderr, "sluice status: %s/status: %v\n", *addr, err)
		return exitFailure
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(st)
		return exitOK
	}
	printStatus(stdout, st)
	return exitOK
}

func printStatus(w io.Writer, st edge.Status) {
	b := st.Buffer
	fmt.Fprintf(w, "site: %s\n", st.Ready)
	fmt.Fprintf(w, "buffer %s: %s of %s (%.1f%%), %d messages, when full: %s",
		b.Stream, humanBytes(float64(b.UsedBytes)), humanBytes(float64(b.MaxBytes)), 100*b.UsedRatio, b.Messages, b.WhenFull)
	if b.Oldest != nil {
		fmt.Fprintf(w, ", oldest %s ago", time.Since(*b.Oldest).Round(time.Second))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "dead letters: %d, %s of %s\n", b.DeadLetters, humanBytes(float64(b.DeadLetterBytes)), humanBytes(float64(b.DeadLetterMaxBytes)))
	if h := st.Hub; h != nil {
		link := "connected"
		if !h.Connected {
			link = "disconnected"
		}
		fmt.Fprintf(w, "hub: %s, site %s, %d messages not yet at the hub, held up to sequence %d\n", link, h.Site, h.LagMessages, h.HeldSequence)
		if h.Error != "" {
			fmt.Fprintf(w, "hub: %s\n", h.Error)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tSTATE\tLAG MSGS\tLAG BYTES\tOLDEST\tROWS WRITTEN\tDEAD LETTERS\tLOST")
	for _, t := range st.Targets {
		oldest := "-"
		if t.Oldest != nil {
			oldest = time.Duration(t.OldestAgeSeconds * float64(time.Second)).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\n", t.Name, t.State, t.LagMessages, humanBytes(float64(t.LagBytes)),
			oldest, t.RowsWritten, t.DeadLetters, t.Lost)
	}
	tw.Flush()
	for _, t := range st.Targets {
		if t.Error != "" {
			fmt.Fprintf(w, "%s: %s\n", t.Name, t.Error)
		}
	}
	for _, t := range st.Targets {
		printJobs(w, t)
	}
	for k, v := range st.Errors {
		fmt.Fprintf(w, "%s: %s\n", k, v)
	}
}

// printJobs prints a summary of a target's TimescaleDB jobs and each failing job with its
// reason; nothing for a target on plain PostgreSQL.
func printJobs(w io.Writer, t sink.TargetStatus) {
	js := t.TimescaleJobs
	if js == nil {
		return
	}
	var failing []sink.JobStatus
	for _, j := range js.Jobs {
		if j.Failing() {
			failing = append(failing, j)
		}
	}
	fmt.Fprintf(w, "%s: timescaledb jobs: %d, %d failing", t.Name, len(js.Jobs), len(failing))
	if js.CheckedAt != nil {
		fmt.Fprintf(w, ", checked %s ago", time.Since(*js.CheckedAt).Round(time.Second))
	}
	fmt.Fprintln(w)
	if js.Error != "" {
		fmt.Fprintf(w, "%s: the last check of the timescaledb jobs failed: %s\n", t.Name, js.Error)
	}
	for _, j := range failing {
		fmt.Fprintf(w, "%s: %s %s: %s\n", t.Name, j.Name(), j.State, j.Reason)
	}
}

// humanBytes writes n bytes with one decimal in the largest binary unit below it.
func humanBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0fB", n)
	}
	return fmt.Sprintf("%.1f%s", n, units[i])
}
