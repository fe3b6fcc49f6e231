package registry

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice/decoders"
	"github.com/sluice-iot/sluice/internal/metrictest"
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

	// until writes content (again every 200 ms, when again is set) until cond holds.
	until := func(what, content string, again bool, cond func() bool) {
		t.Helper()
		writeRegistry(t, r.cfg.File, content)
		deadline := time.Now().Add(30 * time.Second)
		for next := time.Now().Add(200 * time.Millisecond); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 30s", what)
			}
			if again && time.Now().After(next) {
				writeRegistry(t, r.cfg.File, content)
				next = time.Now().Add(200 * time.Millisecond)
			}
		}
	}
	reloads := func(result string) float64 {
		return metrictest.Value(t, metrics, "sluice_registry_reloads_total", "result", result)
	}
	// The same file again until it is reloaded: the watcher is set up.
	until("a reload of the unchanged file", "devices:\n  - device: a\n    tenant: one\n", true, func() bool { return reloads("ok") >= 2 })
	until("a broken file reported", "devices:\n  - device: a\n    tenant: [broken\n", false, func() bool { return reloads("error") >= 1 })
	if d := r.Lookup("a"); d == nil || d.Tenant != "one" {
		t.Fatalf("after a broken file: got %+v, want the previous entry", d)
	}
	until("the good file in force", "devices:\n  - device: a\n    tenant: two\n", false, func() bool {
		d := r.Lookup("a")
		return d != nil && d.Tenant == "two"
	})
}
