package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// figure is one compared measure of a run.
type figure struct {
	key, label string
	of         func(r *Result) float64
	pg         bool // needs PostgreSQL's CPU
}

var figures = []figure{
	{key: "msgs_per_s", label: "end to end msgs/s", of: func(r *Result) float64 { return r.UplinksPerSecond }},
	{key: "stack_cpu_s_per_100k", label: "whole stack CPU-s per 100k", pg: true,
		of: func(r *Result) float64 { cpu, _ := r.CPU(); return per100k(cpu+r.PGCPU, r.Sent) }},
	{key: "cpu_s_per_100k", label: "system CPU-s per 100k (without PostgreSQL)",
		of: func(r *Result) float64 { cpu, _ := r.CPU(); return per100k(cpu, r.Sent) }},
	{key: "pg_cpu_s_per_100k", label: "PostgreSQL CPU-s per 100k", pg: true,
		of: func(r *Result) float64 { return per100k(r.PGCPU, r.Sent) }},
	{key: "rss_mb", label: "peak RSS MB (summed)", of: func(r *Result) float64 { _, rss := r.CPU(); return float64(rss) / 1e6 }},
	{key: "puback_p50_ms", label: "PUBACK p50 ms", of: func(r *Result) float64 { return r.PubackP50 }},
	{key: "puback_p99_ms", label: "PUBACK p99 ms", of: func(r *Result) float64 { return r.PubackP99 }},
}

// Compare loads Sluice and the peer stack cfg.Peer alternately, rounds times each, with the
// same generator and database: each run starts fresh processes in a fresh schema, and the
// first of a round alternates (Sluice first in odd rounds). It prints every run's output,
// then a table of the runs and the medians and paired ratios (Sluice/peer per round, median
// of the ratios), ending with a COMPARE line for machines.
func Compare(ctx context.Context, cfg Config, rounds int, out io.Writer) error {
	if cfg.Peer == "" {
		return fmt.Errorf("--peer: required for compare")
	}
	if rounds < 1 {
		return fmt.Errorf("--rounds: %d is fewer than 1", rounds)
	}
	sluiceCfg, peerCfg := cfg, cfg
	sluiceCfg.Peer, sluiceCfg.NoProbes, peerCfg.NoProbes = "", true, true
	var sluice, peer []*Result
	for i := range rounds {
		order := []Config{sluiceCfg, peerCfg}
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, c := range order {
			fmt.Fprintf(out, "--- round %d of %d\n", i+1, rounds)
			r, err := Run(ctx, c, out)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", i+1, c.systemName(), err)
			}
			if c.Peer == "" {
				sluice = append(sluice, r)
			} else {
				peer = append(peer, r)
			}
			fmt.Fprintln(out)
		}
	}
	printComparison(out, cfg.Peer, sluice, peer)
	return nil
}

func (c Config) systemName() string {
	if c.Peer != "" {
		return c.Peer
	}
	return "sluice"
}

func printComparison(out io.Writer, peerName string, sluice, peer []*Result) {
	pg := true
	for _, r := range append(slices.Clone(sluice), peer...) {
		pg = pg && r.PGMeasured()
	}
	fmt.Fprintf(out, "comparison: Sluice against %s, %d rounds\n", peerName, len(sluice))
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "round\tsystem\tload1\tmsgs/s\tCPU-s/100k\tPG CPU-s/100k\tstack CPU-s/100k\tRSS MB\tPUBACK p50 ms\tp99 ms\trows ok\t\n")
	for i := range sluice {
		for _, r := range []*Result{sluice[i], peer[i]} {
			cpu, rss := r.CPU()
			pgCPU, stack := "-", "-"
			if r.PGMeasured() {
				pgCPU = fmt.Sprintf("%.2f", per100k(r.PGCPU, r.Sent))
				stack = fmt.Sprintf("%.2f", per100k(cpu+r.PGCPU, r.Sent))
			}
			fmt.Fprintf(tw, "%d\t%s\t%.2f\t%.0f\t%.2f\t%s\t%s\t%.1f\t%.2f\t%.2f\t%v\t\n", i+1, r.System, r.Load1,
				r.UplinksPerSecond, per100k(cpu, r.Sent), pgCPU, stack, float64(rss)/1e6, r.PubackP50, r.PubackP99,
				r.TableRows == r.ExpectedRows)
		}
	}
	tw.Flush()
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  median of %d rounds\tSluice\t%s\tSluice/%s (median of the rounds' ratios)\n", len(sluice), peerName, peerName)
	var line strings.Builder
	line.WriteString("COMPARE rounds=" + strconv.Itoa(len(sluice)))
	for _, f := range figures {
		if f.pg && !pg {
			continue
		}
		var a, b, ratio []float64
		for i := range sluice {
			x, y := f.of(sluice[i]), f.of(peer[i])
			a, b = append(a, x), append(b, y)
			if y != 0 {
				ratio = append(ratio, x/y)
			}
		}
		ma, mb, mr := median(a), median(b), median(ratio)
		fmt.Fprintf(tw, "  %s\t%.2f\t%.2f\t%.2f×\n", f.label, ma, mb, mr)
		fmt.Fprintf(&line, " sluice_%s=%.2f %s_%s=%.2f ratio_%s=%.3f", f.key, ma, peerName, f.key, mb, f.key, mr)
	}
	tw.Flush()
	if !pg {
		fmt.Fprintln(out, "  PostgreSQL CPU: not measured (the database is not on this machine)")
	}
	fmt.Fprintf(out, "  CPU-s/100k: the system's processes (Sluice; or Telegraf + Mosquitto) per 100k messages; stack adds PostgreSQL's server processes.\n"+
		"  %s: Mosquitto acknowledges QoS 1 from memory; Sluice acknowledges once JetStream has stored the uplink (synced to disk only with --fsync).\n", peerName)
	fmt.Fprintln(out, line.String())
}

// median of xs (0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}
