package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/sluice-iot/sluice/internal/bench"
)

// runBench is `sluice bench`: an end-to-end load test of a Sluice it starts (or of a running
// one, or of a peer stack), printing a table and a final RESULT line. `sluice bench compare`
// runs Sluice and the peer alternately.
func runBench(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "serve" {
		return runProfiled(args[1:], stderr)
	}
	compare := len(args) > 0 && args[0] == "compare"
	name := "sluice bench"
	if compare {
		args, name = args[1:], "sluice bench compare"
	}
	cfg := bench.DefaultConfig()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: sluice bench [flags]\n"+
			"       sluice bench compare --peer telegraf --rounds N [flags]\n\n"+
			"Starts Sluice (this binary, `run`) on free ports with a temporary data dir and a fresh database\n"+
			"schema, loads it over MQTT, and reports throughput, latencies, CPU and memory.\n"+
			"With --peer telegraf it loads Mosquitto + Telegraf (outputs.postgresql) instead; compare runs\n"+
			"Sluice and the peer alternately and prints medians and paired ratios.\n"+
			"Ends with a line: RESULT uplinks_per_s=… readings_per_s=… puback_p50_ms=… puback_p99_ms=… e2e_p99_ms=… rss_mb=…\n"+
			"(compare: COMPARE rounds=… sluice_msgs_per_s=… telegraf_msgs_per_s=… ratio_msgs_per_s=… …)\n\n")
		fs.PrintDefaults()
	}
	rounds := 1
	if compare {
		fs.IntVar(&rounds, "rounds", 3, "runs of each system, alternating")
	}
	fs.IntVar(&cfg.Connections, "connections", cfg.Connections, "MQTT connections publishing at once (one device each)")
	fs.IntVar(&cfg.QoS, "qos", cfg.QoS, "QoS of the publishes: 0 or 1")
	fs.StringVar(&cfg.Payload, "payload", cfg.Payload, "json (4 numeric fields), chirpstack (ChirpStack v4 up events, Dragino LHT65 frames decoded by its JavaScript template) or lpp (Cayenne LPP)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "publish for this long (default 20s unless --messages)")
	fs.IntVar(&cfg.Messages, "messages", 0, "publish this many messages in total")
	fs.Float64Var(&cfg.Rate, "rate", 0, "messages per second offered in total; 0 publishes as fast as acknowledged")
	fs.IntVar(&cfg.Inflight, "inflight", cfg.Inflight, "QoS 1 publishes awaiting PUBACK per connection")
	fs.StringVar(&cfg.Client, "client", cfg.Client, "the generator's MQTT client: minimal (its own, cheapest) or paho (eclipse/paho.mqtt.golang, for comparison)")
	fs.DurationVar(&cfg.Outage, "outage", 0, "cut Sluice off from the database for this long during the load (e.g. 30s) and measure the drain")
	fs.StringVar(&cfg.DatabaseURL, "database-url", os.Getenv("SLUICE_DATABASE_URL"), "PostgreSQL `url` (default $SLUICE_DATABASE_URL)")
	fs.BoolVar(&cfg.Fsync, "fsync", false, "start Sluice with nats.fsync: every acknowledged uplink synced to disk")
	fs.StringVar(&cfg.Broker, "broker", "", "`host:port` of a running Sluice to load instead of starting one")
	fs.StringVar(&cfg.Admin, "admin", "", "with --broker: `host:port` of its admin listener (progress from /metrics)")
	fs.IntVar(&cfg.PID, "pid", 0, "with --broker: its process id, to report its CPU and RSS")
	fs.StringVar(&cfg.Schema, "schema", cfg.Schema, "with --broker: the schema it writes to")
	fs.StringVar(&cfg.Sluice, "sluice", "", "the Sluice binary to start (default: this one)")
	fs.StringVar(&cfg.Templates, "templates", cfg.Templates, "device template directory (for --payload chirpstack)")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the database schema of the started system")
	fs.StringVar(&cfg.Profile, "profile", "", "write CPU, allocation and peak-heap profiles of the started Sluice into `dir` (cpu.pprof, allocs.pprof, heap.pprof)")
	fs.StringVar(&cfg.Peer, "peer", "", "load a peer stack instead of Sluice: telegraf (Mosquitto → Telegraf → PostgreSQL, json payload only)")
	fs.StringVar(&cfg.Telegraf, "telegraf", cfg.Telegraf, "the Telegraf `binary` (with inputs.mqtt_consumer and outputs.postgresql) for --peer telegraf")
	fs.StringVar(&cfg.Mosquitto, "mosquitto", cfg.Mosquitto, "the Mosquitto `binary` for --peer telegraf")
	if err := fs.Parse(args); err != nil {
		return parseFailure(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", name, fs.Arg(0))
		return exitUsage
	}
	if cfg.Duration == 0 && cfg.Messages == 0 {
		cfg.Duration = bench.DefaultConfig().Duration
	}
	if cfg.Sluice == "" && cfg.Broker == "" {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "%s: find this binary (give --sluice): %v\n", name, err)
			return exitUsage
		}
		cfg.Sluice = exe
	}
	err := cfg.Validate()
	if compare {
		if cfg.Peer == "" {
			err = errors.Join(err, errors.New("--peer: required (telegraf)"))
		}
		if rounds < 1 {
			err = errors.Join(err, fmt.Errorf("--rounds: %d is fewer than 1", rounds))
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if compare {
		err = bench.Compare(ctx, cfg, rounds, stdout)
	} else {
		_, err = bench.Run(ctx, cfg, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitFailure
	}
	return exitOK
}

// runProfiled is `sluice bench serve`: `sluice run` under the CPU profiler, writing the CPU and
// allocation profiles when it stops. The benchmark starts Sluice this way for --profile.
func runProfiled(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("sluice bench serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cpu := fs.String("cpuprofile", "", "write a CPU profile to `file`")
	mem := fs.String("memprofile", "", "write an allocation profile to `file`")
	fs.Parse(args[:min(len(args), 4)])
	if *cpu == "" || *mem == "" {
		fmt.Fprintln(stderr, "sluice bench serve: --cpuprofile and --memprofile come first")
		return exitUsage
	}
	f, err := os.Create(*cpu)
	if err != nil {
		fmt.Fprintln(stderr, "sluice bench serve:", err)
		return exitFailure
	}
	defer f.Close()
	pprof.StartCPUProfile(f)
	stop := make(chan struct{})
	go keepPeakHeap(filepath.Join(filepath.Dir(*mem), "heap.pprof"), stop)
	code := runSite(args[4:], stderr)
	close(stop)
	pprof.StopCPUProfile()
	m, err := os.Create(*mem)
	if err != nil {
		fmt.Fprintln(stderr, "sluice bench serve:", err)
		return exitFailure
	}
	defer m.Close()
	pprof.Lookup("allocs").WriteTo(m, 0)
	return code
}

// keepPeakHeap writes the heap profile to path whenever the heap in use is the largest seen
// (checked every second) until stop is closed: what holds memory at the peak of a run.
func keepPeakHeap(path string, stop <-chan struct{}) {
	var peak uint64
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse <= peak {
			continue
		}
		peak = ms.HeapInuse
		if f, err := os.Create(path); err == nil {
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
}
