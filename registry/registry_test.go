package registry

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice/decoders"
	"github.com/sluice-iot/sluice/internal/metrictest"
	"github.com/sluice-iot/sluice/internal/mqtttest"
)

func writeRegistry(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func newTestRegistry(t *testing.T, name, content string) (*Registry, error) {
	t.Helper()
	return newTestRegistryOn(t, prometheus.NewRegistry(), name, content)
}

func newTestRegistryOn(t *testing.T, reg prometheus.Registerer, name, content string) (*Registry, error) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.File = filepath.Join(t.TempDir(), name)
	writeRegistry(t, cfg.File, content)
	return New(cfg, decoders.NewSet(), zerolog.Nop(), reg)
}

// The same registry written as YAML and as CSV gives the same entries.
func TestRegistryYAMLAndCSV(t *testing.T) {
	yamlReg, err := newTestRegistry(t, "devices.yaml", `devices:
  - device: A840414BF185F3B2
    tenant: farm
    decoder: cayenne-lpp
    variables: {offset: "0.5", unit: C}
    class: long
    tags: {site: barn, floor: "1"}
  - device: greenhouse-co2
`)
	if err != nil {
		t.Fatal(err)
	}
	csvReg, err := newTestRegistry(t, "devices.csv", `# device registry
device,tenant,decoder,class,variables,tags
A840414BF185F3B2,farm,cayenne-lpp,long,offset=0.5;unit=C,site=barn;floor=1
greenhouse-co2
`)
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*Registry{"yaml": yamlReg, "csv": csvReg} {
		t.Run(name, func(t *testing.T) {
			if r.Len() != 2 {
				t.Errorf("devices: got %d, want 2", r.Len())
			}
			d := r.Lookup("a840414bf185f3b2")
			if d == nil || d.Tenant != "farm" || d.Decoder != "cayenne-lpp" || d.Class != "long" ||
				d.Variables["offset"] != "0.5" || d.Variables["unit"] != "C" || d.Tags["site"] != "barn" || d.Tags["floor"] != "1" {
				t.Errorf("a840414bf185f3b2: got %+v", d)
			}
			if d := r.Lookup("", "unknown", "greenhouse-co2"); d == nil || d.Tenant != "" {
				t.Errorf("lookup by a later key: got %+v", d)
			}
			if d := r.Lookup("nope"); d != nil {
				t.Errorf("unknown device: got %+v", d)
			}
		})
	}
}

func TestRegistryReportsEveryProblem(t *testing.T) {
	_, err := newTestRegistry(t, "devices.yaml", `devices:
  - device: a
    decoder: acme/missing
  - tenant: t
  - device: a
`)
	for _, want := range []string{
		`devices[0].decoder: unknown decoder "acme/missing" (known: cayenne-lpp, json, raw)`,
		`devices[1].device: required`,
		`devices[2].device: "a" is listed twice`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not report %q", err, want)
		}
	}
	_, err = newTestRegistry(t, "devices.csv", "device,tenant,model\nx,y,z\n")
	if err == nil || !strings.Contains(err.Error(), `header: unknown column "model" (known: device, tenant, decoder, class, variables, tags)`) {
		t.Errorf("csv with an unknown column: got %v", err)
	}
	_, err = newTestRegistry(t, "devices.yaml", "devices:\n  - device: a\n    modle: x\n")
	if err == nil || !strings.Contains(err.Error(), "field modle not found") {
		t.Errorf("yaml with an unknown key: got %v", err)
	}
}

// A broken file is reported and the previous registry stays in force; the next good file
// replaces it.
func TestRegistryReloadKeepsPreviousOnError(t *testing.T) {
	metrics := prometheus.NewRegistry()
	r, err := newTestRegistryOn(t, metrics, "devices.yaml", "devices:\n  - device: a\n    tenant: one\n")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(50 * time.Millisecond) // the watcher is set up

	waitFor := func(result string, n float64) {
		t.Helper()
		mqtttest.WaitFor(t, 10*time.Second, fmt.Sprintf("sluice_registry_reloads_total{result=%q} to reach %v", result, n), func() bool {
			return metrictest.Value(t, metrics, "sluice_registry_reloads_total", "result", result) >= n
		})
	}
	writeRegistry(t, r.cfg.File, "devices:\n  - device: a\n    tenant: [broken\n")
	waitFor("error", 1)
	if d := r.Lookup("a"); d == nil || d.Tenant != "one" {
		t.Fatalf("after a broken file: got %+v, want the previous entry", d)
	}
	writeRegistry(t, r.cfg.File, "devices:\n  - device: a\n    tenant: two\n")
	waitFor("ok", 2)
	if d := r.Lookup("a"); d == nil || d.Tenant != "two" {
		t.Fatalf("after a good file: got %+v", d)
	}
}
