package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/internal/sitetest"
)

// While a site runs, `sluice status` prints its targets and `sluice replay` (connecting through
// nats.listen) writes again what the database lost; without nats.listen replay refuses to open
// the running site's buffer.
func TestReplayAndStatusCommands(t *testing.T) {
	cfg := sitetest.Config(t)
	cfg.NATS.Listen = mqtttest.FreeAddr(t)
	site := sitetest.Start(t, cfg)

	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + site.MQTTAddr).SetClientID("cmd"))
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	for i := range 50 {
		tok := cl.Publish("sensors/cmd/up", 1, false, fmt.Sprintf(`{"seq":%d,"time":%d}`, i, 1_700_000_000_000+int64(i)))
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	cl.Disconnect(100)
	if n := site.WaitRows(t, "SELECT count(*) FROM readings", 50, 30*time.Second); n != 50 {
		t.Fatalf("readings: got %d, want 50", n)
	}

	var out, errb bytes.Buffer
	if code := run([]string{"status", "--addr", site.HTTPAddr}, &out, &errb); code != 0 {
		t.Fatalf("sluice status: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "TARGET") || !regexpMatch(`(?m)^main\s+ok\s+0\s`, out.String()) {
		t.Fatalf("sluice status printed:\n%s", out.String())
	}

	pgtest.Exec(t, "DELETE FROM "+site.Schema+".measurements_standard")
	yaml := func(listen string) string {
		path := filepath.Join(t.TempDir(), "sluice.yaml")
		body := fmt.Sprintf(`
data_dir: %s
http: {address: "%s"}
nats: {listen: "%s"}
routes: [{topic: "sensors/{device}/up", decoder: json, tenant: default}]
sink:
  targets: [{name: main, database_url: "%s", schema: %s}]
`, cfg.DataDir, site.HTTPAddr, listen, pgtest.URL(), site.Schema)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"replay", "--config", yaml(""), "--target", "main", "--all"}, &out, &errb); code != exitFailure ||
		!strings.Contains(errb.String(), "a site is running on "+site.HTTPAddr) {
		t.Fatalf("replay into a running site without nats.listen: exit %d, stderr %q; want exit 1 and the reason", code, errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"replay", "--config", yaml(cfg.NATS.Listen), "--target", "main", "--all"}, &out, &errb); code != 0 {
		t.Fatalf("sluice replay: exit %d: %s", code, errb.String())
	}
	if got, want := out.String(), "replay to main done: 50 messages, 50 new rows\n"; got != want {
		t.Fatalf("sluice replay printed %q, want %q", got, want)
	}
	if !strings.Contains(errb.String(), "replay 100.0%") {
		t.Errorf("no progress line on a non-terminal: %q", errb.String())
	}
	if n := pgtest.Count(t, site.Schema, "SELECT count(*) FROM readings"); n != 50 {
		t.Fatalf("after replay: got %d readings, want 50", n)
	}

	errb.Reset()
	if code := run([]string{"replay", "--target", "main", "--since", "yesterday"}, &out, &errb); code != exitUsage ||
		!strings.Contains(errb.String(), `--since: "yesterday" is neither an RFC 3339 time`) {
		t.Fatalf("bad --since: exit %d, stderr %q", code, errb.String())
	}
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }
