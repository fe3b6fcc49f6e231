package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sluice-iot/sluice/decoders"
	"github.com/sluice-iot/sluice/hooks"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/internal/sitetest"
)

// A LoRaWAN device and a plain MQTT device store uplinks, and a third device sends only what
// does not decode; `sluice devices` lists all three with what the sink learnt of them (the
// failures counted, the last error), --tenant and --stale select among them.
func TestDevicesCommand(t *testing.T) {
	cfg := sitetest.Config(t)
	cfg.Routes = append(cfg.Routes, hooks.RouteConfig{Topic: "application/+/device/+/event/+", Format: decoders.FormatChirpStack,
		Tenant: "farm", LoRaWAN: hooks.LoRaWANRouteConfig{RadioReadings: true}})
	site := sitetest.Start(t, cfg)

	event, err := os.ReadFile("../../hooks/testdata/lorawan/chirpstack_up_object.json")
	if err != nil {
		t.Fatal(err)
	}
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + site.MQTTAddr).SetClientID("devices"))
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	pub := func(topic, payload string) {
		t.Helper()
		if tok := cl.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	pub("application/farm/device/a840414bf185f3b2/event/up", string(event))
	for i := range 3 {
		pub("sensors/th-2/up", fmt.Sprintf(`{"temperature":%d,"battery":%d,"state":"idle"}`, 20+i, 90-i))
	}
	pub("sensors/th-2/up", `{"temperature":`)
	pub("sensors/th-3/up", `not json`)
	pub("sensors/th-3/up", `{"temperature":`)
	cl.Disconnect(100)
	if n := site.WaitRows(t, "SELECT coalesce(sum(uplinks), 0)::bigint FROM devices", 4, 30*time.Second); n != 4 {
		t.Fatalf("uplinks in the inventory: got %d, want 4", n)
	}
	if n := site.WaitRows(t, "SELECT coalesce(sum(decode_failures), 0)::bigint FROM devices", 3, 30*time.Second); n != 3 {
		t.Fatalf("decode failures in the inventory: got %d, want 3", n)
	}

	path := filepath.Join(t.TempDir(), "sluice.yaml")
	body := fmt.Sprintf("data_dir: %s\nroutes: [{topic: \"sensors/{device}/up\", decoder: json, tenant: default}]\nsink:\n  targets: [{name: other, database_url: \"%s\", schema: nowhere}, {name: main, database_url: \"%s\", schema: %s}]\n",
		t.TempDir(), pgtest.URL(), pgtest.URL(), site.Schema)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	devices := func(args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		code := run(append([]string{"devices", "--config", path}, args...), &out, &errb)
		return out.String(), errb.String(), code
	}
	out, errs, code := devices("--target", "main")
	if code != exitOK {
		t.Fatalf("sluice devices: exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "TENANT") || lines[4] != "3 devices" {
		t.Fatalf("sluice devices printed:\n%s", out)
	}
	for i, want := range []string{
		`^default\s+th-2\s+\S+Z\s+\S+\s+\S+Z\s+3\s+1\s+-\s+-\s+-\s+-\s+88\s+json\s+decode: .+$`,
		`^default\s+th-3\s+\S+Z\s+\S+\s+\S+Z\s+0\s+2\s+-\s+-\s+-\s+-\s+-\s+json\s+decode: .+$`,
		`^farm\s+a840414bf185f3b2\s+\S+Z\s+\S+\s+\S+Z\s+1\s+0\s+42\s+-57\s+9.2\s+3\s+3.05\s+network:chirpstack\s+-$`,
	} {
		if !regexpMatch(want, lines[i+1]) {
			t.Errorf("line %d = %q, want it to match %s", i+1, lines[i+1], want)
		}
	}
	if out, _, _ := devices("--target", "main", "--tenant", "farm"); !strings.Contains(out, "a840414bf185f3b2") || strings.Contains(out, "th-2") || !strings.HasSuffix(out, "1 device\n") {
		t.Errorf("--tenant farm printed:\n%s", out)
	}
	if out, _, _ := devices("--target", "main", "--stale", "1h"); !strings.HasSuffix(out, "0 devices\n") {
		t.Errorf("--stale 1h with every device just seen printed:\n%s", out)
	}
	pgtest.Exec(t, "UPDATE "+site.Schema+".devices SET last_seen = now() - interval '2 hours' WHERE device = 'th-2'")
	if out, _, _ := devices("--target", "main", "--stale", "1h"); !strings.Contains(out, "th-2") || !strings.HasSuffix(out, "1 device\n") {
		t.Errorf("--stale 1h printed:\n%s", out)
	}
	if _, errs, code := devices("--target", "nope"); code != exitUsage || !strings.Contains(errs, `--target: no target "nope"`) {
		t.Errorf("unknown target: exit %d, stderr %q", code, errs)
	}
	if _, errs, code := devices("--stale", "soon"); code != exitUsage || !strings.Contains(errs, "invalid value \"soon\" for flag -stale") {
		t.Errorf("bad --stale: exit %d, stderr %q", code, errs)
	}
}
