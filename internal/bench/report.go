package bench

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is what one run measured.
type Result struct {
	Config Config
	// System is what was loaded ("Sluice", "Telegraf + Mosquitto"); Child says the benchmark
	// started it.
	System string
	Child  bool
	// Load1 is the 1-minute load average when the run started (-1: unknown).
	Load1 float64
	// ReadingsPerMessage is the rows one message gives in the system's tables.
	ReadingsPerMessage int

	Written       int64 // PUBLISH packets written
	Acked         int64 // PUBACKs received (QoS 1)
	Sent          int64 // messages that count: acknowledged (QoS 1) or written (QoS 0)
	ExpectedRows  int64
	CommittedRows int64 // rows the sink committed during the run
	TableRows     int64 // rows in the measurements table at the end (-1: unknown)

	PublishSeconds float64 // first publish to last PUBACK
	Seconds        float64 // first publish to last row committed

	PublishPerSecond  float64
	UplinksPerSecond  float64 // end to end: messages whose rows are committed, per second
	ReadingsPerSecond float64
	PeakRowsPerSecond float64 // best one-second window of commits

	PubackP50, PubackP99, PubackMax float64 // ms
	E2EP50, E2EP99                  float64 // ms
	E2ESamples                      int

	// Procs are the system's processes read from /proc: CPU from the start of the load to the
	// last commit, peak RSS. Empty when unknown (a running Sluice without --pid).
	Procs        []ProcCost
	GeneratorCPU float64 // seconds over the run

	// PostgreSQL's server processes over the same span, apart from the benchmark's own
	// backends (PGWatcherCPU); PGNote says why it was not measured.
	PGCPU, PGWatcherCPU float64
	PGProcesses         int
	PGNote              string

	Drain *Drain

	// Group commit, from Sluice's metrics (0 when unknown): groups stored, publishes in them,
	// and the fsyncs that made them durable.
	Groups, GroupedMessages, Fsyncs int64
	FsyncSeconds                    float64

	puback, e2e []uint32 // µs
}

// ProcCost is what one process of the system cost.
type ProcCost struct {
	Name string
	CPU  float64 // seconds
	RSS  int64   // peak bytes (VmHWM)
}

// CPU is the system's processes' CPU seconds; RSS the sum of their peaks.
func (r *Result) CPU() (cpu float64, rss int64) {
	for _, p := range r.Procs {
		cpu, rss = cpu+p.CPU, rss+p.RSS
	}
	return cpu, rss
}

// PGMeasured says PostgreSQL's CPU was read (the server is on this machine).
func (r *Result) PGMeasured() bool { return r.PGNote == "" }

// Drain is the catch-up after a database outage.
type Drain struct {
	Outage        time.Duration
	ResumeDelay   time.Duration // restore to the first commit (the sink's retry backoff)
	Resumed, Done time.Time
	Backlog       int64 // rows waiting when the database came back
	RowsPerSecond float64
}

func (r *Result) finish() {
	per := float64(r.ExpectedRows) / max(float64(r.Sent), 1)
	if r.PublishSeconds > 0 {
		r.PublishPerSecond = float64(r.Sent) / r.PublishSeconds
	}
	if r.Seconds > 0 {
		r.ReadingsPerSecond = float64(r.CommittedRows) / r.Seconds
		r.UplinksPerSecond = r.ReadingsPerSecond / max(per, 1)
	}
	r.PubackP50, r.PubackP99, r.PubackMax = quantiles(r.puback)
	r.E2EP50, r.E2EP99, _ = quantiles(r.e2e)
	r.E2ESamples = len(r.e2e)
}

// quantiles returns p50, p99 and max of µs samples, in ms.
func quantiles(us []uint32) (p50, p99, mx float64) {
	if len(us) == 0 {
		return 0, 0, 0
	}
	slices.Sort(us)
	at := func(q float64) float64 { return float64(us[min(int(q*float64(len(us))), len(us)-1)]) / 1000 }
	return at(0.50), at(0.99), float64(us[len(us)-1]) / 1000
}

func per100k(v float64, n int64) float64 {
	if n == 0 {
		return 0
	}
	return v / (float64(n) / 1e5)
}

func (r *Result) print(out io.Writer) {
	c := r.Config
	rate := "max"
	if c.Rate > 0 {
		rate = fmt.Sprintf("%.0f/s", c.Rate)
	}
	fmt.Fprintf(out, "sluice bench: %s, %d connections, QoS %d, %s payload, rate %s", r.System, c.Connections, c.QoS, c.Payload, rate)
	if c.Peer == "" {
		fmt.Fprintf(out, ", fsync %v", c.Fsync)
	}
	if c.Outage > 0 {
		fmt.Fprintf(out, ", outage %v", c.Outage)
	}
	fmt.Fprintf(out, ", load average %.2f\n", r.Load1)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "  %s\t%s\n", k, v) }
	row("messages", fmt.Sprintf("%d sent, %d acknowledged, %d rows expected", r.Written, r.Acked, r.ExpectedRows))
	row("publish rate", fmt.Sprintf("%.0f msg/s over %.2fs", r.PublishPerSecond, r.PublishSeconds))
	if c.QoS > 0 {
		row("PUBACK latency", fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, max %.2f ms", r.PubackP50, r.PubackP99, r.PubackMax))
	}
	tableRows := "unknown"
	if r.TableRows >= 0 {
		tableRows = strconv.FormatInt(r.TableRows, 10)
	}
	row("rows committed", fmt.Sprintf("%d (table holds %s)", r.CommittedRows, tableRows))
	row("end to end", fmt.Sprintf("%.0f msgs/s, %.0f rows/s over %.2fs (best 1s: %.0f rows/s)",
		r.UplinksPerSecond, r.ReadingsPerSecond, r.Seconds, r.PeakRowsPerSecond))
	if r.E2ESamples > 0 {
		row("publish → row visible", fmt.Sprintf("p50 %.1f ms, p99 %.1f ms (%d probe rows, polled every %v)", r.E2EP50, r.E2EP99, r.E2ESamples, probeInterval))
	}
	where := "a child process, from /proc"
	if !r.Child {
		where = "a running process, from /proc"
	}
	cpu, rss := r.CPU()
	for _, p := range r.Procs {
		row(p.Name, fmt.Sprintf("CPU %.2f s, %.2f s per 100k messages; peak RSS %.1f MB (%s)", p.CPU, per100k(p.CPU, r.Sent), float64(p.RSS)/1e6, where))
	}
	if len(r.Procs) == 0 {
		row("CPU, RSS", "unknown (give --pid of the running Sluice)")
	}
	if r.PGMeasured() {
		row("PostgreSQL CPU", fmt.Sprintf("%.2f s, %.2f s per 100k messages (%d server processes; the benchmark's own backends' %.2f s left out)",
			r.PGCPU, per100k(r.PGCPU, r.Sent), r.PGProcesses, r.PGWatcherCPU))
		if len(r.Procs) > 0 {
			row("whole stack CPU", fmt.Sprintf("%.2f s, %.2f s per 100k messages (%s + PostgreSQL)", cpu+r.PGCPU, per100k(cpu+r.PGCPU, r.Sent), r.System))
		}
	} else {
		row("PostgreSQL CPU", "not measured: "+r.PGNote)
	}
	if len(r.Procs) > 1 {
		row("peak RSS, summed", fmt.Sprintf("%.1f MB", float64(rss)/1e6))
	}
	if r.Groups > 0 {
		g := fmt.Sprintf("%d groups, %.1f publishes per group", r.Groups, float64(r.GroupedMessages)/float64(r.Groups))
		if r.Fsyncs > 0 {
			g += fmt.Sprintf(", %d fsyncs (mean %.2f ms)", r.Fsyncs, 1000*r.FsyncSeconds/float64(r.Fsyncs))
		}
		row("group commit", g)
	}
	row("generator CPU", fmt.Sprintf("%.2f s, %.2f s per 100k messages", r.GeneratorCPU, per100k(r.GeneratorCPU, r.Sent)))
	if d := r.Drain; d != nil {
		if d.Done.IsZero() {
			row("drain", fmt.Sprintf("did not catch up (outage %v)", d.Outage.Round(time.Millisecond)))
		} else {
			row("drain", fmt.Sprintf("%.0f readings/s: %d backlog rows, outage %v, first commit %v after restore",
				d.RowsPerSecond, d.Backlog, d.Outage.Round(time.Millisecond), d.ResumeDelay.Round(time.Millisecond)))
		}
	}
	tw.Flush()
	if c.Peer != "" {
		fmt.Fprintln(out, "  note: Mosquitto acknowledges QoS 1 (PUBACK) from memory, and Telegraf acknowledges to Mosquitto from memory: a crash loses what is not written yet")
	}
	if r.TableRows >= 0 && r.TableRows != r.ExpectedRows && r.Config.Broker == "" {
		fmt.Fprintf(out, "WARNING: %d rows expected, %d in the table\n", r.ExpectedRows, r.TableRows)
	}
	fmt.Fprintln(out, r.Line())
}

// Line is the machine-readable summary: "RESULT key=value …".
func (r *Result) Line() string {
	var b strings.Builder
	b.WriteString("RESULT")
	kv := func(k string, v float64, prec int) {
		b.WriteString(" " + k + "=" + strconv.FormatFloat(v, 'f', prec, 64))
	}
	kv("uplinks_per_s", r.UplinksPerSecond, 0)
	kv("readings_per_s", r.ReadingsPerSecond, 0)
	kv("puback_p50_ms", r.PubackP50, 2)
	kv("puback_p99_ms", r.PubackP99, 2)
	if r.E2ESamples > 0 {
		kv("e2e_p99_ms", r.E2EP99, 1)
	}
	cpu, rss := r.CPU()
	kv("rss_mb", float64(rss)/1e6, 1)
	if r.Drain != nil {
		kv("drain_rows_per_s", r.Drain.RowsPerSecond, 0)
	}
	kv("publish_per_s", r.PublishPerSecond, 0)
	kv("puback_max_ms", r.PubackMax, 2)
	if r.E2ESamples > 0 {
		kv("e2e_p50_ms", r.E2EP50, 1)
	}
	kv("cpu_s", cpu, 2)
	kv("cpu_s_per_100k", per100k(cpu, r.Sent), 2)
	if r.PGMeasured() {
		kv("pg_cpu_s_per_100k", per100k(r.PGCPU, r.Sent), 2)
		kv("stack_cpu_s_per_100k", per100k(cpu+r.PGCPU, r.Sent), 2)
	}
	if len(r.Procs) > 1 {
		for _, p := range r.Procs {
			kv(p.Name+"_rss_mb", float64(p.RSS)/1e6, 1)
		}
	}
	kv("gen_cpu_s_per_100k", per100k(r.GeneratorCPU, r.Sent), 2)
	kv("load1", r.Load1, 2)
	if r.Groups > 0 {
		kv("group_size", float64(r.GroupedMessages)/float64(r.Groups), 1)
	}
	kv("sent", float64(r.Sent), 0)
	kv("rows", float64(r.TableRows), 0)
	return b.String()
}

// ParseLine parses a RESULT (or COMPARE) line into its values.
func ParseLine(line string) (map[string]float64, error) {
	line = strings.TrimSpace(line)
	rest, ok := strings.CutPrefix(line, "RESULT ")
	if !ok {
		rest, ok = strings.CutPrefix(line, "COMPARE ")
	}
	if !ok {
		return nil, fmt.Errorf("not a RESULT line: %q", line)
	}
	out := map[string]float64{}
	for _, f := range strings.Fields(rest) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("RESULT field %q is not key=value", f)
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("RESULT field %s: %w", k, err)
		}
		out[k] = x
	}
	return out, nil
}
