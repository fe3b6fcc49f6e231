package decoders

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sluice-iot/sluice"
)

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.PoolSize = 1
	// A starved test machine must not turn a script that uses up its CPU budget into a
	// starved call: the wall-clock ceiling has its own tests (watchdog_test.go).
	cfg.WallTimeout = time.Minute
	return cfg
}

func mustScript(t testing.TB, src string) *Script {
	t.Helper()
	s, err := NewScript("test", "test.js", []byte(src), testConfig(), ScriptOptions{Log: zerolog.Nop()})
	if err != nil {
		t.Fatalf("NewScript: %v", err)
	}
	return s
}

var recv = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func testInput(b ...byte) *Input {
	return &Input{Bytes: b, FPort: 2, RecvTime: recv, Device: "dev-1", Variables: map[string]string{"k": "v"}}
}

func jsonOf(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}

func TestScriptEntryPoints(t *testing.T) {
	tests := []struct {
		name, src, entry, data string
		warnings               []string
	}{
		{
			name:  "decodeUplink",
			entry: "decodeUplink",
			src: `function decodeUplink(input) {
				return {data: {t: (input.bytes[0] << 8 | input.bytes[1]) / 10, port: input.fPort,
					year: input.recvTime.getUTCFullYear(), isArray: Array.isArray(input.bytes), k: input.variables.k},
					warnings: ["low battery"]};
			}`,
			data:     `{"isArray":true,"k":"v","port":2,"t":25.6,"year":2026}`,
			warnings: []string{"low battery"},
		},
		{
			name:  "decodeUplink bytes are a plain Array",
			entry: "decodeUplink",
			src:   `function decodeUplink(input) { return {data: {sum: input.bytes.reduce(function (a, b) { return a + b }, 0), s: input.bytes.slice(1).join(",")}} }`,
			data:  `{"s":"0","sum":1}`,
		},
		{
			name:  "ChirpStack v3 Decode",
			entry: "Decode",
			src:   `function Decode(fPort, bytes, variables) { return {t: (bytes[0] << 8 | bytes[1]) / 10, port: fPort, k: variables.k} }`,
			data:  `{"k":"v","port":2,"t":25.6}`,
		},
		{
			name:  "TTN v2 Decoder",
			entry: "Decoder",
			src:   `function Decoder(bytes, port) { return {t: (bytes[0] << 8 | bytes[1]) / 10, port: port} }`,
			data:  `{"port":2,"t":25.6}`,
		},
		{
			name:  "decodeUplink wins over legacy names",
			entry: "decodeUplink",
			src:   `function Decoder() { return {legacy: true} } function decodeUplink() { return {data: {v3: true}} }`,
			data:  `{"v3":true}`,
		},
		{
			name:  "undefined becomes null, NaN becomes null, dates become strings",
			entry: "decodeUplink",
			src:   `function decodeUplink() { return {data: {u: undefined, n: NaN, d: new Date(0), nested: {a: [1, undefined]}}} }`,
			data:  `{"d":"1970-01-01T00:00:00Z","n":null,"nested":{"a":[1,null]},"u":null}`,
		},
		{
			name:  "missing data is an empty object",
			entry: "decodeUplink",
			src:   `function decodeUplink() { return {warnings: []} }`,
			data:  `{}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustScript(t, tt.src)
			if got := s.Entry(); got != tt.entry {
				t.Errorf("Entry() = %q, want %q", got, tt.entry)
			}
			out, err := s.Decode(context.Background(), testInput(0x01, 0x00))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got := jsonOf(t, out.Data); got != tt.data {
				t.Errorf("data = %s, want %s", got, tt.data)
			}
			if !reflect.DeepEqual(out.Warnings, tt.warnings) {
				t.Errorf("warnings = %q, want %q", out.Warnings, tt.warnings)
			}
		})
	}
}

func TestScriptReadings(t *testing.T) {
	s, err := NewScript("th", "th.js", []byte(`function decodeUplink(input) {
		return {data: {temperature: 21.5, humidity: 40, label: "kitchen", alarm: true}};
	}`), testConfig(), ScriptOptions{Units: map[string]string{"temperature": "°C", "humidity": "%"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Decode(context.Background(), testInput())
	if err != nil {
		t.Fatal(err)
	}
	want := []sluice.Reading{
		sluice.BoolReading("alarm", true, recv),
		{Metric: "humidity", Value: 40, Unit: "%", Time: recv},
		sluice.TextReading("label", "kitchen", recv),
		{Metric: "temperature", Value: 21.5, Unit: "°C", Time: recv},
	}
	if !reflect.DeepEqual(out.Readings, want) {
		t.Errorf("readings = %+v, want %+v", out.Readings, want)
	}
}

func TestScriptNormalizeUplink(t *testing.T) {
	s := mustScript(t, `
		function decodeUplink(input) { return {data: {temp: 21.5, hum: 40, bat: 3.1}} }
		function normalizeUplink(input) {
			return {data: {air: {temperature: input.data.temp, relativeHumidity: input.data.hum}, battery: input.data.bat}};
		}`)
	out, err := s.Decode(context.Background(), testInput())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := jsonOf(t, out.Data), `{"bat":3.1,"hum":40,"temp":21.5}`; got != want {
		t.Errorf("data = %s, want %s", got, want)
	}
	want := []sluice.Reading{
		{Metric: "air.relativeHumidity", Value: 40, Unit: "%", Time: recv},
		{Metric: "air.temperature", Value: 21.5, Unit: "°C", Time: recv},
		{Metric: "battery", Value: 3.1, Unit: "V", Time: recv},
	}
	if !reflect.DeepEqual(out.Readings, want) {
		t.Errorf("readings = %+v, want %+v", out.Readings, want)
	}
}

func TestScriptNormalizeUplinkMeasurements(t *testing.T) {
	s := mustScript(t, `
		function decodeUplink(input) { return {data: {a: 1, b: 2}} }
		function normalizeUplink(input) {
			return {data: [{time: "2026-01-01T00:00:00Z", air: {co2: input.data.a}}, {air: {co2: input.data.b}}]};
		}`)
	out, err := s.Decode(context.Background(), testInput())
	if err != nil {
		t.Fatal(err)
	}
	want := []sluice.Reading{
		{Metric: "air.co2", Value: 1, Unit: "ppm", Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Metric: "air.co2", Value: 2, Unit: "ppm", Time: recv},
	}
	if !reflect.DeepEqual(out.Readings, want) {
		t.Errorf("readings = %+v, want %+v", out.Readings, want)
	}
}

func TestScriptNormalizeErrorsAreWarnings(t *testing.T) {
	s := mustScript(t, `
		function decodeUplink(input) { return {data: {temp: 3}} }
		function normalizeUplink(input) { return {errors: ["unknown unit"]} }`)
	out, err := s.Decode(context.Background(), testInput())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"normalizeUplink: unknown unit"}; !reflect.DeepEqual(out.Warnings, want) {
		t.Errorf("warnings = %q, want %q", out.Warnings, want)
	}
	if len(out.Readings) != 1 || out.Readings[0].Metric != "temp" {
		t.Errorf("readings = %+v, want the decoded temp", out.Readings)
	}
}

func TestScriptCompileErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"syntax", "function decodeUplink(input) {\n  return {data: {a: 1}\n}", "test.js:3:2: syntax error:"},
		{"no entry point", "var x = 1;", "test.js: script defines none of decodeUplink"},
		{"top level throws", "\n\nthrow new Error('boom');", "test.js:3:7: script threw: Error: boom"},
		{"top level loops", "while (true) {}", "test.js:1:"},
		{"entry point is a looping getter", "Object.defineProperty(globalThis, 'decodeUplink', {get: function () { while (true) {} }});", "test.js:1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewScript("test", "test.js", []byte(tt.src), testConfig(), ScriptOptions{})
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v (%T), want *CompileError", err, err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("err = %q, want prefix %q", err, tt.want)
			}
		})
	}
}

func TestScriptTooLarge(t *testing.T) {
	cfg := testConfig()
	cfg.MaxScriptSize = 1 << 10
	src := "function Decoder() { return {} }\n" + strings.Repeat("// padding\n", 200)
	_, err := NewScript("big", "big.js", []byte(src), cfg, ScriptOptions{})
	if err == nil || !strings.Contains(err.Error(), "more than max_script_size 1KiB") {
		t.Errorf("err = %v, want a max_script_size error", err)
	}
}

// TestScriptSandboxGlobals checks that a script sees no timers, modules, filesystem or network.
func TestScriptSandboxGlobals(t *testing.T) {
	s := mustScript(t, `function decodeUplink() {
		var names = ["setTimeout", "setInterval", "setImmediate", "require", "process", "fetch",
			"XMLHttpRequest", "WebSocket", "module", "exports", "Buffer", "fs"];
		var present = names.filter(function (n) { return typeof globalThis[n] !== "undefined" });
		return {data: {present: present, console: typeof console.log}};
	}`)
	out, err := s.Decode(context.Background(), testInput())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := jsonOf(t, out.Data), `{"console":"function","present":[]}`; got != want {
		t.Errorf("data = %s, want %s", got, want)
	}
}

func TestScriptConsoleLog(t *testing.T) {
	var buf strings.Builder
	log := zerolog.New(&buf)
	s, err := NewScript("chatty", "chatty.js", []byte(`function decodeUplink(input) { console.log("got", input.bytes.length, "bytes"); return {data: {}} }`),
		testConfig(), ScriptOptions{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	const calls = 200
	for i := 0; i < calls; i++ {
		if _, err := s.Decode(context.Background(), testInput(1, 2, 3)); err != nil {
			t.Fatal(err)
		}
	}
	// A burst of 10 lines per second: at least 10, and far fewer than one per call unless the
	// calls took many seconds.
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) < 10 || len(lines) >= calls {
		t.Errorf("got %d log lines for %d calls, want a sample of them", len(lines), calls)
	}
	want := `{"level":"info","component":"decoders","decoder":"chatty","device":"dev-1","message":"got 3 bytes"}`
	if lines[0] != want {
		t.Errorf("log line = %s, want %s", lines[0], want)
	}
}

func TestScriptStatePerScript(t *testing.T) {
	// Two scripts defining the same global never see each other's value.
	a := mustScript(t, `var shared = "a"; function Decoder() { return {v: shared} }`)
	b := mustScript(t, `var shared = "b"; function Decoder() { return {v: shared} }`)
	for _, tc := range []struct {
		s    *Script
		want string
	}{{a, `{"v":"a"}`}, {b, `{"v":"b"}`}} {
		out, err := tc.s.Decode(context.Background(), testInput())
		if err != nil {
			t.Fatal(err)
		}
		if got := jsonOf(t, out.Data); got != tc.want {
			t.Errorf("data = %s, want %s", got, tc.want)
		}
	}
}

func TestScriptReloadKeepsServingOnError(t *testing.T) {
	s := mustScript(t, `function Decoder() { return {version: 1} }`)
	cfg := testConfig()
	err := s.Reload("test.js", []byte("function Decoder( {"), cfg, ScriptOptions{})
	var ce *CompileError
	if !errors.As(err, &ce) || ce.Line != 1 {
		t.Fatalf("Reload err = %v, want a *CompileError at line 1", err)
	}
	out, err := s.Decode(context.Background(), testInput())
	if err != nil || out.Data["version"] != 1.0 {
		t.Fatalf("after failed reload: %v, %v; want version 1", out, err)
	}
	if err := s.Reload("test.js", []byte(`function Decoder() { return {version: 2} }`), cfg, ScriptOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err = s.Decode(context.Background(), testInput())
	if err != nil || out.Data["version"] != 2.0 {
		t.Fatalf("after reload: %v, %v; want version 2", out, err)
	}
}

func TestScriptPoolBusy(t *testing.T) {
	s := mustScript(t, `function Decoder() { var t = Date.now(); while (Date.now() - t < 50) {} return {} }`)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = s.Decode(context.Background(), testInput())
	}()
	time.Sleep(10 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Decode(ctx, testInput())
	<-done
	if err != nil && !errors.Is(err, ErrBusy) {
		t.Errorf("err = %v, want nil or ErrBusy", err)
	}
}

// TestScriptReplacedDate checks that recvTime is a real Date even when the script replaces the
// global Date constructor.
func TestScriptReplacedDate(t *testing.T) {
	s := mustScript(t, "Date = function () { throw new Error('no dates') };\n"+
		"function decodeUplink(i) { return {data: {y: i.recvTime.getUTCFullYear()}} }")
	out, err := s.Decode(context.Background(), testInput())
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Data["y"]; got != 2026.0 {
		t.Errorf("y = %v, want 2026", got)
	}
}
