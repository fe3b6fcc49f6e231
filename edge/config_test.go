package edge_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/edge"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// The sample config is the reference: it must load and validate as shipped.
func TestSampleConfigLoads(t *testing.T) {
	cfg, err := edge.LoadConfig("../configs/sluice.yaml")
	if err != nil {
		t.Fatalf("configs/sluice.yaml: %v", err)
	}
	if got := cfg.MQTT.Listeners[0].Address; got != "127.0.0.1:1884" {
		t.Errorf("mqtt address: got %q, want 127.0.0.1:1884", got)
	}
	if len(cfg.Routes) == 0 || cfg.Routes[0].Topic != "sensors/{device}/up" || cfg.Routes[0].Decoder != "json" {
		t.Errorf("first route: got %+v, want sensors/{device}/up → json", cfg.Routes)
	}
	if cfg.Sink.Targets[0].BatchWait != 100*time.Millisecond {
		t.Errorf("batch_wait: got %v", cfg.Sink.Targets[0].BatchWait)
	}
}

func TestConfigEnvOverridesAndExpansion(t *testing.T) {
	raw := []byte(`
data_dir: ${SITE_DIR:-/var/lib/sluice}
routes: [{topic: "a/{device}", decoder: json, tenant: t1}]
sink: {targets: [{name: main, database_url: "postgres://${DB_HOST}/x"}]}
`)
	cfg, err := edge.ParseConfig("inline", raw, env(map[string]string{
		"DB_HOST":          "db.example",
		"SLUICE_MQTT_ADDR": "127.0.0.1:1999",
		"SLUICE_LOG_LEVEL": "debug",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/var/lib/sluice" {
		t.Errorf("data_dir: got %q, want the ${…:-default}", cfg.DataDir)
	}
	if got := cfg.Sink.Targets[0].DatabaseURL; got != "postgres://db.example/x" {
		t.Errorf("database_url: got %q", got)
	}
	if cfg.Sink.Targets[0].BatchRows != 5000 {
		t.Errorf("a target omitting batch_rows gets the default: got %d", cfg.Sink.Targets[0].BatchRows)
	}
	if cfg.MQTT.Listeners[0].Address != "127.0.0.1:1999" || cfg.Log.Level != "debug" {
		t.Errorf("env overrides not applied: %q %q", cfg.MQTT.Listeners[0].Address, cfg.Log.Level)
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown keys", `
mqtt:
  listners: []
sink:
  targets:
    - name: main
      databse_url: x
`, []string{"mqtt.listners: unknown key (line 3)", "sink.targets[0].databse_url: unknown key (line 7)"}},
		{"invalid values", `
log: {level: loud}
mqtt:
  allow_anonymous: true
  listeners: [{type: tcp, address: "0.0.0.0:1883"}, {type: udp, address: "x"}]
nats: {max_bytes: 10KiB}
routes: [{topic: "sensors/+/up", decoder: json, tenant: t}]
sink: {targets: [{name: main, database_url: "", batch_rows: 0}]}
`, []string{
			`log.level: "loud" is not one of trace, debug, info, warn, error`,
			`mqtt.listeners[0].address: "0.0.0.0:1883" is not loopback, but allow_anonymous is on`,
			`mqtt.listeners[1].type: "udp" is not one of tcp, tls, ws, wss`,
			`mqtt.listeners[1].address: "x" is not host:port`,
			`nats.max_bytes: 10KiB is below the minimum of 1MiB`,
			`routes[0].topic: "sensors/+/up": has no {device} level`,
			`sink.targets[0].database_url: required (or set SLUICE_DATABASE_URL)`,
			`sink.targets[0].batch_rows: 0 is outside 1..1000000`,
		}},
		{"memory settings", `
memory_limit: 16MiB
nats: {duplicate_window: 8s, publish_timeout: 5s}
`, []string{
			"memory_limit: 16MiB is below 32MiB; 0 means no limit",
			"nats.duplicate_window: 8s is shorter than twice publish_timeout (5s)",
		}},
		{"memory sizes that do not parse", `
memory_limit: lots
`, []string{`memory_limit: invalid size "lots"`, "(line 2)"}},
		{"wrong types", `
shutdown_timeout: soon
mqtt: {max_clients: many}
`, []string{"shutdown_timeout: cannot unmarshal !!str `soon` into time.Duration (line 2)",
			"mqtt.max_clients: cannot unmarshal !!str `many` into int (line 3)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			configProblems(t, tt.yaml, tt.want)
		})
	}
}

// The memory settings a small board changes: each accepted value is what the site gets, and
// the defaults are those docs/operations.md gives.
func TestConfigMemorySettings(t *testing.T) {
	const routes = "routes: [{topic: \"a/{device}\", decoder: json, tenant: t1}]\n"
	const sink = "sink: {targets: [{name: main, database_url: \"postgres://db/x\"}]}\n"
	tests := []struct {
		name      string
		yaml      string
		limit     sluice.ByteSize
		window    time.Duration
		batchRows int
	}{
		{"defaults", sink, edge.DefaultMemoryLimit, 30 * time.Second, 5000},
		{"no limit", "memory_limit: 0\n" + sink, 0, 30 * time.Second, 5000},
		{"256 MB board", "memory_limit: 64MiB\nnats: {duplicate_window: 15s, publish_timeout: 5s}\n" +
			"sink: {targets: [{name: main, database_url: \"postgres://db/x\", batch_rows: 2000}]}\n", 64 << 20, 15 * time.Second, 2000},
		{"512 MB board", "memory_limit: 128MiB\n" + sink, 128 << 20, 30 * time.Second, 5000},
		{"1 GB board", "memory_limit: 400MiB\nnats: {duplicate_window: 2m}\n" + sink, 400 << 20, 2 * time.Minute, 5000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := edge.ParseConfig("test.yaml", []byte(routes+tt.yaml), env(nil))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MemoryLimit != tt.limit {
				t.Errorf("memory_limit: got %s, want %s", cfg.MemoryLimit, tt.limit)
			}
			if cfg.NATS.DuplicateWindow != tt.window {
				t.Errorf("nats.duplicate_window: got %v, want %v", cfg.NATS.DuplicateWindow, tt.window)
			}
			if got := cfg.Sink.Targets[0].BatchRows; got != tt.batchRows {
				t.Errorf("batch_rows: got %d, want %d", got, tt.batchRows)
			}
		})
	}
}

// configProblems parses yaml, which must fail with a *ConfigError mentioning each of want.
func configProblems(t *testing.T, yaml string, want []string) *edge.ConfigError {
	t.Helper()
	_, err := edge.ParseConfig("test.yaml", []byte(yaml), env(nil))
	var ce *edge.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *ConfigError", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %q:\n%s", w, err)
		}
	}
	return ce
}
