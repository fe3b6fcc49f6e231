// Command sluice is the Sluice edge IoT ingestor: an MQTT broker that decodes device payloads
// inline, buffers readings durably in NATS JetStream and forwards them to PostgreSQL or
// TimescaleDB.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/sink"
)

// version is stamped at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2 // bad flags or an invalid configuration
)

const usage = `usage: sluice <command> [flags]

commands:
  run      start the edge site (broker, buffer, sinks)
  migrate  create or update the database schema
  replay   re-deliver retained history (or re-decode failures) to one target, resumable
  backfill copy readings history from another database or a legacy table, resumable
  verify   compare the readings of two databases per series and hour or day
  status   print buffer usage and per-target lag, rows written and dead letters
  devices  list the device inventory: last seen, uplinks, signal, battery, decoder
  check    load and validate the configuration, print problems
  decode   run a decoder, script or device template on one payload, or a template's examples
  passwd   print the bcrypt hash of a password read from standard input
  bench    load a Sluice end to end over MQTT and report its performance
  version  print the version

Run 'sluice <command> -h' for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return runSite(args[1:], stderr)
	case "migrate":
		return runMigrate(args[1:], stdout, stderr)
	case "bench":
		return runBench(args[1:], stdout, stderr)
	case "replay":
		return runReplay(args[1:], stdout, stderr)
	case "backfill":
		return runBackfill(args[1:], stdout, stderr)
	case "verify":
		return runVerify(args[1:], stdout, stderr)
	case "status":
		return runStatus(args[1:], stdout, stderr)
	case "devices":
		return runDevices(args[1:], stdout, stderr)
	case "check":
		return runCheck(args[1:], stdout, stderr)
	case "passwd":
		return runPasswd(args[1:], os.Stdin, stdout, stderr)
	case "decode":
		return runDecode(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "sluice", buildVersion())
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "sluice: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
}

func buildVersion() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	return v
}

// parseFailure is the exit code for a flag.Parse error: -h and --help print the flags and
// succeed; anything else is a usage error.
func parseFailure(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// configFlag registers --config on fs.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "configs/sluice.yaml", "configuration `file`")
}

// loadConfig loads the configuration, printing every problem on failure.
// findTarget is the sink target of cfg (loaded from path) named by --target.
func findTarget(cfg *edge.Config, path, name string) (sink.TargetConfig, error) {
	var names []string
	for _, t := range cfg.Sink.Targets {
		if t.Name == name {
			return t, nil
		}
		names = append(names, t.Name)
	}
	return sink.TargetConfig{}, fmt.Errorf("--target: no target %q in %s (targets: %s)", name, path, strings.Join(names, ", "))
}

func loadConfig(path string, stderr io.Writer) (*edge.Config, int) {
	cfg, err := edge.LoadConfig(path)
	if err != nil {
		fmt.Fprintln(stderr, "sluice:", err)
		var ce *edge.ConfigError
		if errors.As(err, &ce) {
			return nil, exitUsage
		}
		return nil, exitUsage
	}
	return cfg, exitOK
}

func runSite(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("sluice run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	level := fs.String("log-level", "", "log `level`: trace, debug, info, warn or error (overrides log.level and SLUICE_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return parseFailure(err)
	}
	cfg, code := loadConfig(*path, stderr)
	if cfg == nil {
		return code
	}
	if *level != "" {
		cfg.Log.Level = *level
		if err := cfg.Validate(); err != nil {
			fmt.Fprintln(stderr, "sluice: --log-level:", err)
			return exitUsage
		}
	}
	log := edge.NewLogger(cfg.Log, os.Stderr)
	log.Info().Str("version", buildVersion()).Str("config", *path).Str("data_dir", cfg.DataDir).Msg("starting sluice")
	site, err := edge.New(*cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "sluice:", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := site.Run(ctx); err != nil {
		log.Error().Err(err).Msg("sluice failed")
		return exitFailure
	}
	return exitOK
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sluice check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return parseFailure(err)
	}
	warnings, err := edge.CheckConfig(*path)
	for _, w := range warnings {
		fmt.Fprintln(stderr, "sluice: warning:", w)
	}
	if err != nil {
		fmt.Fprintln(stderr, "sluice:", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return exitOK
}

func runMigrate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sluice migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	dryRun := fs.Bool("dry-run", false, "print the SQL that would run (as a psql script), change nothing")
	if err := fs.Parse(args); err != nil {
		return parseFailure(err)
	}
	cfg, code := loadConfig(*path, stderr)
	if cfg == nil {
		return code
	}
	log := edge.NewLogger(cfg.Log, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	failed := false
	for _, tc := range cfg.Sink.Targets {
		steps, err := sink.MigrateTarget(ctx, tc, *dryRun, log)
		if *dryRun && err == nil {
			fmt.Fprintf(stdout, "-- target %s, schema %s: the SQL sluice migrate would run now\n", tc.Name, tc.Schema)
			for _, s := range steps {
				fmt.Fprintln(stdout, s)
			}
			continue
		}
		for _, s := range steps {
			fmt.Fprintf(stdout, "%s: %s\n", tc.Name, s)
		}
		if err != nil {
			fmt.Fprintf(stderr, "sluice: target %s: %v\n", tc.Name, err)
			failed = true
			continue
		}
		// Failing TimescaleDB jobs do not fail the migration, but they are worth saying here.
		if warnings, err := sink.JobWarnings(ctx, tc); err != nil {
			fmt.Fprintf(stderr, "sluice: target %s: %v\n", tc.Name, err)
		} else {
			for _, w := range warnings {
				fmt.Fprintf(stdout, "%s: warning: timescaledb %s\n", tc.Name, w)
			}
		}
	}
	if failed {
		return exitFailure
	}
	return exitOK
}
