package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/sluice-iot/sluice/internal/bench"
	"github.com/sluice-iot/sluice/internal/pgtest"
)

// `sluice bench` starts a real Sluice, loads it briefly, and reports every message it sent as
// committed readings on its RESULT line. Throughput is never asserted here.
func TestBenchCommitsWhatItSent(t *testing.T) {
	bin := sluiceBin(t)
	pgtest.Connect(t, "") // fail early, with advice, when there is no database
	for _, tc := range []struct {
		name string
		args []string
		sent float64
		per  float64 // rows per message
	}{
		{"json qos1", []string{"--payload", "json", "--qos", "1", "--messages", "3000", "--connections", "5"}, 3000, 4},
		{"lpp qos1 at a rate", []string{"--payload", "lpp", "--qos", "1", "--messages", "600", "--connections", "3", "--rate", "2000"}, 600, 4},
		{"chirpstack through the lht65 template", []string{"--payload", "chirpstack", "--templates", "../../configs/templates",
			"--messages", "400", "--connections", "2"}, 400, 6},
		{"json through an outage", []string{"--payload", "json", "--duration", "6s", "--outage", "1s", "--rate", "500", "--connections", "5"}, -1, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := append([]string{"bench", "--sluice", bin, "--database-url", pgtest.URL()}, tc.args...)
			if code := run(args, &out, &errOut); code != exitOK {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			res, err := bench.ParseLine(lines[len(lines)-1])
			if err != nil {
				t.Fatalf("%v\noutput:\n%s", err, out.String())
			}
			for _, key := range []string{"uplinks_per_s", "readings_per_s", "puback_p50_ms", "puback_p99_ms", "e2e_p99_ms", "rss_mb",
				"cpu_s_per_100k", "pg_cpu_s_per_100k", "stack_cpu_s_per_100k", "load1"} {
				if _, ok := res[key]; !ok {
					t.Errorf("RESULT has no %s: %s", key, lines[len(lines)-1])
				}
			}
			sent := tc.sent
			if sent < 0 { // a duration: whatever was acknowledged, and a drain was measured
				sent = res["sent"]
				if _, ok := res["drain_rows_per_s"]; !ok || sent < 1000 {
					t.Errorf("outage run: sent %v, drain_rows_per_s present %v\n%s", sent, ok, out.String())
				}
			}
			if res["sent"] != sent {
				t.Errorf("sent: got %v, want %v", res["sent"], sent)
			}
			if got, want := res["rows"], tc.per*sent; got != want {
				t.Errorf("rows in the tables: got %v, want %v (%v readings per message)\n%s", got, want, tc.per, out.String())
			}
			if res["rss_mb"] <= 0 {
				t.Errorf("rss_mb: got %v, want the child's peak RSS", res["rss_mb"])
			}
			// The test database is local: its server processes' CPU is read.
			if res["pg_cpu_s_per_100k"] <= 0 || res["stack_cpu_s_per_100k"] <= res["cpu_s_per_100k"] {
				t.Errorf("PostgreSQL CPU: pg_cpu_s_per_100k=%v stack_cpu_s_per_100k=%v cpu_s_per_100k=%v, want PostgreSQL's share above 0",
					res["pg_cpu_s_per_100k"], res["stack_cpu_s_per_100k"], res["cpu_s_per_100k"])
			}
		})
	}
}

// telegrafBin is the Telegraf binary for the peer tests: $SLUICE_BENCH_TELEGRAF, else
// /opt/peer/telegraf. Without it the test skips, saying so.
func telegrafBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("SLUICE_BENCH_TELEGRAF")
	if bin == "" {
		bin = "/opt/peer/telegraf"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("*** PEER BENCHMARK SKIPPED: no Telegraf binary at %s (set SLUICE_BENCH_TELEGRAF to one built with inputs.mqtt_consumer and outputs.postgresql) ***", bin)
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err != nil {
		t.Skip("*** PEER BENCHMARK SKIPPED: no Mosquitto at /usr/sbin/mosquitto ***")
	}
	return bin
}

// `sluice bench compare` loads Sluice and the peer once each; every message is a row in
// Telegraf's table and 4 readings in Sluice's.
func TestBenchComparePeer(t *testing.T) {
	bin, telegraf := sluiceBin(t), telegrafBin(t)
	pgtest.Connect(t, "")
	var out, errOut bytes.Buffer
	args := []string{"bench", "compare", "--rounds", "1", "--peer", "telegraf", "--telegraf", telegraf, "--sluice", bin,
		"--database-url", pgtest.URL(), "--messages", "3000", "--connections", "5"}
	if code := run(args, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	var results []map[string]float64
	var compare map[string]float64
	for _, line := range strings.Split(out.String(), "\n") {
		if !strings.HasPrefix(line, "RESULT ") && !strings.HasPrefix(line, "COMPARE ") {
			continue
		}
		res, err := bench.ParseLine(line)
		if err != nil {
			t.Fatalf("%v\noutput:\n%s", err, out.String())
		}
		if strings.HasPrefix(line, "COMPARE ") {
			compare = res
		} else {
			results = append(results, res)
		}
	}
	if len(results) != 2 || compare == nil {
		t.Fatalf("got %d RESULT lines and COMPARE %v, want 2 and one\n%s", len(results), compare != nil, out.String())
	}
	// Round 1 runs Sluice first.
	for i, want := range []struct {
		system string
		rows   float64
	}{{"sluice", 4 * 3000}, {"telegraf", 3000}} {
		res := results[i]
		if res["sent"] != 3000 || res["rows"] != want.rows {
			t.Errorf("%s: sent %v, rows %v; want 3000 and %v\n%s", want.system, res["sent"], res["rows"], want.rows, out.String())
		}
		if res["pg_cpu_s_per_100k"] < 0 || res["rss_mb"] <= 0 {
			t.Errorf("%s: pg_cpu_s_per_100k=%v rss_mb=%v", want.system, res["pg_cpu_s_per_100k"], res["rss_mb"])
		}
	}
	if results[1]["telegraf_rss_mb"] <= 0 || results[1]["mosquitto_rss_mb"] <= 0 {
		t.Errorf("peer RSS: telegraf %v MB, mosquitto %v MB", results[1]["telegraf_rss_mb"], results[1]["mosquitto_rss_mb"])
	}
	for _, key := range []string{"sluice_msgs_per_s", "telegraf_msgs_per_s", "ratio_msgs_per_s", "ratio_stack_cpu_s_per_100k", "ratio_rss_mb"} {
		if _, ok := compare[key]; !ok {
			t.Errorf("COMPARE has no %s", key)
		}
	}
	if !strings.Contains(out.String(), "Mosquitto acknowledges QoS 1 (PUBACK) from memory") {
		t.Errorf("the peer's output does not say where its PUBACK comes from:\n%s", out.String())
	}
}

func TestBenchRejectsBadFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"bench", "--qos", "2", "--connections", "0", "--database-url", "x", "--duration", "1s", "--messages", "5"}, &out, &errOut)
	if code != exitUsage {
		t.Fatalf("exit %d, want %d", code, exitUsage)
	}
	for _, want := range []string{"--qos: 2 is not 0 or 1", "--connections: 0 is outside 1..10000",
		"--duration, --messages: give one, not both", `--database-url: "x" is not a postgres://user@host:port/db URL`} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr does not mention %q:\n%s", want, errOut.String())
		}
	}
	errOut.Reset()
	code = run([]string{"bench", "compare", "--rounds", "0", "--peer", "telegraf", "--telegraf", "/nonexistent/telegraf",
		"--payload", "lpp", "--fsync", "--database-url", "postgres://x@127.0.0.1/db"}, &out, &errOut)
	if code != exitUsage {
		t.Fatalf("compare: exit %d, want %d", code, exitUsage)
	}
	for _, want := range []string{`--telegraf: "/nonexistent/telegraf" is not a binary`, "--payload: the peer reads json only, not lpp",
		"--peer: not with --broker, --outage, --fsync or --profile", "--rounds: 0 is fewer than 1"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("compare: stderr does not mention %q:\n%s", want, errOut.String())
		}
	}
}
