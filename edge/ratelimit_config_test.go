package edge_test

import (
	"strings"
	"testing"

	"github.com/sluice-iot/sluice/edge"
)

// Store-on-change and flood limits are off in the sample config, and their problems are
// reported with their key paths.
func TestRateLimitConfig(t *testing.T) {
	cfg, err := edge.LoadConfig("../configs/sluice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StoreOnChange.Enabled() || cfg.Limits.Enabled() {
		t.Fatalf("sample config: store_on_change enabled %v, limits enabled %v; want both off", cfg.StoreOnChange.Enabled(), cfg.Limits.Enabled())
	}
	raw := []byte(`
routes: [{topic: "s/{device}", decoder: json, tenant: t}]
sink: {targets: [{name: main, database_url: "postgres://db/x"}]}
store_on_change:
  metrics: {temperature: {absolute: 0.1}}
  templates: {acme/th: {humidity: {relative: 2, heartbeat: 1h}}}
  devices: [{device: "lab-*", metrics: {"*": {off: true, heartbeat: 1h}}}]
limits:
  device: {rate: -5}
  overrides: [{rate: 1}]
`)
	_, err = edge.ParseConfig("test.yaml", raw, func(string) (string, bool) { return "", false })
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"store_on_change.metrics.temperature.heartbeat: required and positive",
		"store_on_change.templates.acme/th.humidity.relative: 2 must be a fraction from 0 to below 1",
		"store_on_change.devices[0].metrics.*: off excludes absolute, relative, distance, heartbeat and discrete",
		"limits.device.rate: -5 must be a finite number ≥ 0",
		"limits.overrides[0]: set tenant, device or both",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := edge.ParseConfig("test.yaml", []byte("store_on_change: {metric: {}}\n"), func(string) (string, bool) { return "", false }); err == nil || !strings.Contains(err.Error(), "store_on_change.metric: unknown key") {
		t.Errorf("misspelt key: got %v, want store_on_change.metric: unknown key", err)
	}
}
