package main

import (
	"bytes"
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
			for _, key := range []string{"uplinks_per_s", "readings_per_s", "puback_p50_ms", "puback_p99_ms", "e2e_p99_ms", "rss_mb"} {
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
		})
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
}
