package decoders

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice/internal/metrictest"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	bad := Config{Watch: true, WallTimeout: time.Hour, MaxCallStack: 1, PoolSize: 0}
	err := bad.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	want := []string{
		"timeout: 0s is out of range (want more than 0 and at most 1m)",
		"wall_timeout: 1h0m0s is out of range (want 0 for 10 × timeout, or from timeout 0s to 10m)",
		"max_script_size: 0B is out of range (want 1KiB to 64MiB)",
		"max_output_size: 0B is out of range (want 1KiB to 64MiB)",
		"max_call_stack: 1 is out of range (want 16 to 100000)",
		"pool_size: 0 is out of range (want 1 to 1024)",
		"watch: is on but neither scripts_dir nor templates_dir is set",
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("Validate() =\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func version(t *testing.T, d Decoder) any {
	t.Helper()
	out, err := d.Decode(context.Background(), testInput())
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return out.Data["version"]
}

func TestOpen(t *testing.T) {
	scripts := t.TempDir()
	writeFile(t, filepath.Join(scripts, "counter.js"), `function Decoder(bytes) { return {version: 1} }`)
	cfg := DefaultConfig()
	cfg.ScriptsDir = scripts
	cfg.TemplatesDir = templatesDir
	reg := prometheus.NewRegistry()
	s, err := Open(cfg, zerolog.Nop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	names := strings.Join(s.Names(), ",")
	for _, want := range []string{"cayenne-lpp", "counter", "dragino/lht65", "elsys/ers-co2", "json", "raw"} {
		if !strings.Contains(names, want) {
			t.Errorf("Names() = %s, want it to include %s", names, want)
		}
	}
	d, ok := s.Lookup("dragino/lht65")
	if !ok {
		t.Fatal("dragino/lht65 not found")
	}
	out, err := d.Decode(context.Background(), &Input{FPort: 2, Bytes: mustHex(t, "CBF60B0D0376010ADD7FFF"), RecvTime: recv})
	if err != nil {
		t.Fatal(err)
	}
	units := map[string]string{}
	for _, r := range out.Readings {
		units[r.Metric] = r.Unit
	}
	if units["temperature"] != "°C" || units["humidity"] != "%" {
		t.Errorf("units = %v, want the template's", units)
	}
	if _, err := d.Decode(context.Background(), &Input{FPort: 9, Bytes: []byte{1}}); !errors.Is(err, ErrReported) {
		t.Errorf("err = %v, want ErrReported", err)
	}
	if got := metrictest.Labelled(t, reg, "sluice_decoder_calls_total", prometheus.Labels{"decoder": "dragino/lht65"}); got != 2 {
		t.Errorf("calls = %v, want 2", got)
	}
	if got := metrictest.Labelled(t, reg, "sluice_decoder_failures_total", prometheus.Labels{"decoder": "dragino/lht65", "reason": "reported"}); got != 1 {
		t.Errorf("failures{reason=reported} = %v, want 1", got)
	}
	if err := s.Check("nope"); err == nil || !strings.Contains(err.Error(), `unknown decoder "nope" (known: cayenne-lpp, counter,`) {
		t.Errorf("Check = %v", err)
	}
}

func TestOpenReportsEveryBrokenScript(t *testing.T) {
	scripts := t.TempDir()
	writeFile(t, filepath.Join(scripts, "a.js"), "function Decoder(bytes) {\n  return {\n}")
	writeFile(t, filepath.Join(scripts, "b.js"), "var x = 1;")
	writeFile(t, filepath.Join(scripts, "ok.js"), "function Decoder() { return {} }")
	cfg := DefaultConfig()
	cfg.ScriptsDir = scripts
	_, err := Open(cfg, zerolog.Nop(), nil)
	if err == nil {
		t.Fatal("Open succeeded, want errors")
	}
	for _, want := range []string{
		filepath.Join(scripts, "a.js") + ":3:2: syntax error: Unexpected end of input",
		filepath.Join(scripts, "b.js") + ": script defines none of",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v\nwant it to contain %q", err, want)
		}
	}
}

func TestReload(t *testing.T) {
	scripts := t.TempDir()
	file := filepath.Join(scripts, "dev.js")
	writeFile(t, file, `function Decoder() { return {version: 1} }`)
	cfg := DefaultConfig()
	cfg.ScriptsDir = scripts
	s, err := Open(cfg, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := s.Lookup("dev")
	if got := version(t, d); got != 1.0 {
		t.Fatalf("version = %v, want 1", got)
	}

	writeFile(t, file, "function Decoder() {\n  return {version: 2\n}")
	change, err := s.Reload()
	var ce *CompileError
	if !errors.As(err, &ce) || ce.File != file || ce.Line != 3 {
		t.Fatalf("Reload err = %v, want a *CompileError in %s at line 3", err, file)
	}
	if len(change.Reloaded) != 0 {
		t.Errorf("reloaded %v, want nothing", change.Reloaded)
	}
	if got := version(t, d); got != 1.0 {
		t.Errorf("after a broken edit: version = %v, want 1 (previous version keeps serving)", got)
	}

	writeFile(t, file, `function decodeUplink() { return {data: {version: 2}} }`)
	writeFile(t, filepath.Join(scripts, "new.js"), `function Decoder() { return {version: 9} }`)
	change, err = s.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(change.Reloaded, ",") != "dev" || strings.Join(change.Loaded, ",") != "new" {
		t.Errorf("change = %+v, want dev reloaded and new loaded", change)
	}
	if got := version(t, d); got != 2.0 {
		t.Errorf("after reload: version = %v through the old handle, want 2", got)
	}

	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	change, err = s.Reload()
	if err != nil || strings.Join(change.Removed, ",") != "dev" {
		t.Errorf("Reload = %+v, %v; want dev removed", change, err)
	}
	if _, ok := s.Lookup("dev"); ok {
		t.Error("dev is still in the set after its file was removed")
	}
}

func TestRunWatchesFiles(t *testing.T) {
	scripts := t.TempDir()
	templates := t.TempDir()
	file := filepath.Join(scripts, "dev.js")
	writeFile(t, file, `function Decoder() { return {version: 1} }`)
	cfg := DefaultConfig()
	cfg.ScriptsDir = scripts
	cfg.TemplatesDir = templates
	cfg.Watch = true
	s, err := Open(cfg, zerolog.New(zerolog.NewTestWriter(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	d, _ := s.Lookup("dev")

	// Run reloads once its watches are in place, so this change is seen whether it lands
	// before or after that.
	writeFile(t, file, `function Decoder() { return {version: 2} }`)
	eventually(t, func() bool { return version(t, d) == 2.0 })
	// A template added in a new vendor directory is picked up too.
	writeFile(t, filepath.Join(templates, "acme", "probe", DecoderFile), `function Decoder() { return {version: 3} }`)
	writeFile(t, filepath.Join(templates, "acme", "probe", TemplateFile), "name: Probe\nvendor: acme\nmodel: probe\n")
	eventually(t, func() bool {
		d, ok := s.Lookup("acme/probe")
		return ok && version(t, d) == 3.0
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

func eventually(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestConfigYAML(t *testing.T) {
	cfg := DefaultConfig()
	err := yamlUnmarshal([]byte(`
scripts_dir: /etc/sluice/decoders
templates_dir: /etc/sluice/templates
watch: true
timeout: 250ms
wall_timeout: 2s
max_script_size: 512KiB
max_output_size: 1MiB
max_call_stack: 500
pool_size: 8
`), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{ScriptsDir: "/etc/sluice/decoders", TemplatesDir: "/etc/sluice/templates", Watch: true,
		Timeout: 250 * time.Millisecond, WallTimeout: 2 * time.Second, MaxScriptSize: 512 << 10, MaxOutputSize: 1 << 20, MaxCallStack: 500, PoolSize: 8}
	if cfg != want {
		t.Errorf("cfg = %+v, want %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}

func TestMetricsTimeouts(t *testing.T) {
	scripts := t.TempDir()
	writeFile(t, filepath.Join(scripts, "loop.js"), `function Decoder(bytes) { while (bytes[0] === 1) {} return {ok: true} }`)
	cfg := DefaultConfig()
	cfg.ScriptsDir = scripts
	cfg.WallTimeout = time.Minute // the CPU budget, not a starved machine, must end the loop
	reg := prometheus.NewRegistry()
	s, err := Open(cfg, zerolog.Nop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := s.Lookup("loop")
	if _, err := d.Decode(context.Background(), testInput(1)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if _, err := d.Decode(context.Background(), testInput(0)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels prometheus.Labels
		want   float64
	}{
		{"sluice_decoder_calls_total", prometheus.Labels{"decoder": "loop"}, 2},
		{"sluice_decoder_timeouts_total", prometheus.Labels{"decoder": "loop"}, 1},
		{"sluice_decoder_failures_total", prometheus.Labels{"decoder": "loop", "reason": "timeout"}, 1},
		{"sluice_decoder_runtimes_total", prometheus.Labels{"decoder": "loop", "event": "discarded"}, 1},
		{"sluice_decoder_runtimes_total", prometheus.Labels{"decoder": "loop", "event": "created"}, 2},
		{"sluice_decoder_reloads_total", prometheus.Labels{"result": "ok"}, 1},
	} {
		if got := metrictest.Labelled(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestRunWithoutWatch(t *testing.T) {
	s, err := Open(DefaultConfig(), zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil (idempotent)", err)
	}
}
