package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/sink"
	"github.com/sluice-iot/sluice/transfer"
)

// endpoints resolves the --from and --to of backfill and verify: a PostgreSQL URL, or the
// name of a target in the configuration, which is loaded only when a name needs it.
type endpoints struct {
	path string
	cfg  *edge.Config
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") || strings.Contains(s, "=")
}

// target returns the target configuration of value; schema ("" default) applies to a URL only.
// The returned code is exitUsage when value names nothing.
func (e *endpoints) target(flag, value, schema string, stderr io.Writer) (sink.TargetConfig, bool) {
	if value == "" {
		fmt.Fprintf(stderr, "sluice: %s: required (a PostgreSQL URL or a target name from the configuration)\n", flag)
		return sink.TargetConfig{}, false
	}
	if isURL(value) {
		tc := sink.DefaultTargetConfig()
		tc.Name, tc.DatabaseURL = strings.TrimPrefix(flag, "--"), value
		if schema != "" {
			tc.Schema = schema
		}
		return tc, true
	}
	if schema != "" {
		fmt.Fprintf(stderr, "sluice: %s-schema applies to a URL; target %s has its schema in %s\n", flag, value, e.path)
		return sink.TargetConfig{}, false
	}
	if e.cfg == nil {
		cfg, _ := loadConfig(e.path, stderr)
		if cfg == nil {
			return sink.TargetConfig{}, false
		}
		e.cfg = cfg
	}
	var names []string
	for _, t := range e.cfg.Sink.Targets {
		if t.Name == value {
			return t, true
		}
		names = append(names, t.Name)
	}
	fmt.Fprintf(stderr, "sluice: %s: %q is neither a PostgreSQL URL nor a target of %s (targets: %s)\n", flag, value, e.path, strings.Join(names, ", "))
	return sink.TargetConfig{}, false
}

// logger is the configuration's logger when one was loaded, else info to stderr.
func (e *endpoints) logger(stderr io.Writer) zerolog.Logger {
	lc := edge.DefaultConfig().Log
	if e.cfg != nil {
		lc = e.cfg.Log
	}
	return edge.NewLogger(lc, stderr)
}

// parseRange fills r from the --since, --until and --tenant flags of backfill and verify and
// returns what was wrong with them.
func parseRange(r *transfer.Range, since, until, tenant string) []string {
	var problems []string
	now := time.Now()
	var err error
	if r.Since, err = parseWhen(since, now); err != nil {
		problems = append(problems, "--since: "+err.Error())
	}
	if r.Until, err = parseWhen(until, now); err != nil {
		problems = append(problems, "--until: "+err.Error())
	}
	r.Tenant = tenant
	return problems
}
