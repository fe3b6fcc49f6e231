package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testTemplates = "../../configs/templates"

func TestDecodeCommand(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "th.js")
	if err := os.WriteFile(script, []byte(`function decodeUplink(input) {
		if (input.bytes.length < 2) return {errors: ["need 2 bytes"]};
		return {data: {t: ((input.bytes[0] << 8) | input.bytes[1]) / 10, port: input.fPort, site: input.variables.site,
			year: input.recvTime.getUTCFullYear()}, warnings: input.fPort === 9 ? ["test port"] : []};
	}`), 0o644); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(dir, "broken.js")
	if err := os.WriteFile(broken, []byte("function decodeUplink(input) {\n  throw new Error('no');\n}"), 0o644); err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(dir, "partial.js")
	if err := os.WriteFile(partial, []byte(`function decodeUplink() { return {data: {seen: 1}, warnings: ["w"], errors: ["e"]} }`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // exact, or a prefix when it ends with "…"
		stderr string // substring
	}{
		{"script", []string{"--script", script, "--fport", "9", "--hex", "00FF", "--var", "site=north", "--recv-time", "2025-03-04T05:06:07Z"}, 0,
			`{"data":{"port":9,"site":"north","t":25.5,"year":2025},"warnings":["test port"],"errors":[]}` + "\n", ""},
		{"base64", []string{"--script", script, "--fport", "1", "--base64", "AP8="}, 0,
			`{"data":{"port":1,"site":null,"t":25.5,"year":…`, ""},
		{"reported errors", []string{"--script", script, "--fport", "1", "--hex", "00"}, 1,
			`{"data":null,"warnings":[],"errors":["need 2 bytes"]}` + "\n", "decoder reported errors: need 2 bytes"},
		{"errors with data", []string{"--script", partial, "--fport", "1", "--hex", "00"}, 1,
			`{"data":{"seen":1},"warnings":["w"],"errors":["e"]}` + "\n", "decoder reported errors: e"},
		{"thrown", []string{"--script", broken, "--fport", "1", "--hex", "00"}, 1,
			`{"data":null,"warnings":[],"errors":["script threw: Error: no (at 2:9)"]}` + "\n", "decoder broken at 2:9"},
		{"template", []string{"--templates", testTemplates, "--template", "milesight/ws301", "--fport", "85", "--hex", "017564030001040001"}, 0,
			`{"data":{"battery":100,"door_open":true,"installed":false,"state":"open"},"warnings":[],"errors":[]}` + "\n", ""},
		{"template readings", []string{"--templates", testTemplates, "--template", "milesight/ws301", "--fport", "85", "--hex", "017564", "--readings", "--recv-time", "2025-01-01T00:00:00Z"}, 0,
			`[{"metric":"battery","value":100,"unit":"%","time":"2025-01-01T00:00:00Z"}]` + "\n", ""},
		{"built-in", []string{"--decoder", "cayenne-lpp", "--fport", "1", "--hex", "03 67 01 10 05 67 00 FF"}, 0,
			`{"data":{"temperature_3":27.2,"temperature_5":25.5},"warnings":[],"errors":[]}` + "\n", ""},
		{"template by decoder name", []string{"--templates", testTemplates, "--decoder", "dragino/lse01", "--fport", "2", "--hex", "0D0E010B0B5409C400A510", "--readings", "--recv-time", "2025-01-01T00:00:00Z"}, 0,
			`[{"metric":"battery","value":3.342,"unit":"V","time":"2025-01-01T00:00:00Z"},{"metric":"soil.ec","value":0.165,"unit":"dS/m",…`, ""},
		{"help", []string{"-h"}, 0, "", "usage: sluice decode"},
		{"unknown flag", []string{"--nope"}, 2, "", "flag provided but not defined: -nope"},
		{"normalized", []string{"--templates", testTemplates, "--decoder", "elsys/ers-co2", "--fport", "5", "--hex", "0100E20229"}, 0,
			`{"data":{"humidity":41,"temperature":22.6},"warnings":[],"errors":[]}` + "\n", ""},
		{"normalized output", []string{"--templates", testTemplates, "--decoder", "elsys/ers-co2", "--fport", "5", "--hex", "0100E20229", "--normalized"}, 0,
			`{"data":[{"air":{"relativeHumidity":41,"temperature":22.6}}],"warnings":[],"errors":[]}` + "\n", ""},
		{"readings and normalized", []string{"--script", script, "--fport", "1", "--hex", "00", "--readings", "--normalized"}, 2, "", "give --readings or --normalized, not both"},
		{"no decoder", []string{"--fport", "1", "--hex", "00"}, 2, "", "give exactly one of --script, --template, --decoder"},
		{"two decoders", []string{"--script", script, "--decoder", "json", "--fport", "1", "--hex", "00"}, 2, "", "give exactly one"},
		{"no fport", []string{"--script", script, "--hex", "00"}, 2, "", "--fport must be given"},
		{"no payload", []string{"--script", script, "--fport", "1"}, 2, "", "give the payload with --hex or --base64"},
		{"bad hex", []string{"--script", script, "--fport", "1", "--hex", "0G"}, 2, "", "--hex: encoding/hex: invalid byte"},
		{"bad var", []string{"--script", script, "--fport", "1", "--hex", "00", "--var", "novalue"}, 2, "", `"novalue" is not k=v`},
		{"bad time", []string{"--script", script, "--fport", "1", "--hex", "00", "--recv-time", "yesterday"}, 2, "", "--recv-time"},
		{"unknown decoder", []string{"--templates", testTemplates, "--decoder", "nope", "--fport", "1", "--hex", "00"}, 2, "", `unknown decoder "nope"`},
		{"unknown template", []string{"--templates", testTemplates, "--template", "acme/none", "--fport", "1", "--hex", "00"}, 2, "", "template acme/none"},
		{"test all templates", []string{"--test", testTemplates}, 0, "…", ""},
		{"test nothing", []string{"--test", dir}, 2, "", "no template.yaml or *-codec.yaml under"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := runDecode(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.code, stderr.String())
			}
			if prefix, ok := strings.CutSuffix(tt.stdout, "…"); ok {
				if !strings.HasPrefix(stdout.String(), prefix) {
					t.Errorf("stdout = %q, want prefix %q", stdout.String(), prefix)
				}
			} else if stdout.String() != tt.stdout {
				t.Errorf("stdout = %q, want %q", stdout.String(), tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.stderr)
			}
		})
	}
}

func TestDecodeTestSummary(t *testing.T) {
	var stdout, stderr strings.Builder
	if code := runDecode([]string{"--test", testTemplates}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code = %d, stdout:\n%s", code, stdout.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	last := lines[len(lines)-1]
	if want := " passed, 0 failed"; !strings.HasSuffix(last, want) || len(lines) < 9 {
		t.Errorf("last line = %q, want \"N passed, 0 failed\" after one line per example", last)
	}

	// A template whose example is wrong fails, and the summary counts it.
	dir := filepath.Join(t.TempDir(), "acme", "meter")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "decoder.js"), []byte(`function decodeUplink(i) { return {data: {v: i.bytes[0]}} }`), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "template.yaml"), []byte(`name: Meter
vendor: acme
model: meter
examples:
  - {description: right, fPort: 1, bytes: "05", output: {data: {v: 5}}}
  - {description: wrong, fPort: 1, bytes: "06", output: {data: {v: 5}}}
`), 0o644)
	stdout.Reset()
	if code := runDecode([]string{"--test", dir}, &stdout, &stderr); code != 1 {
		t.Errorf("exit code = %d, want 1", code)
	}
	want := "ok   acme/meter: right\nFAIL acme/meter: wrong: data.v = 6, want 5\n1 passed, 1 failed\n"
	if stdout.String() != want {
		t.Errorf("stdout = %q, want %q", stdout.String(), want)
	}
}

func TestDecodeTestCodec(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "acme")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "door.js"), []byte(`function decodeUplink(input) { return {data: {open: input.bytes[0] === 1}} }`), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "door-codec.yaml"), []byte(`uplinkDecoder:
  fileName: door.js
  examples:
    - description: Open
      input: {fPort: 1, bytes: [0x01]}
      output: {data: {open: true}}
`), 0o644)
	var stdout, stderr strings.Builder
	if code := runDecode([]string{"--test", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code = %d, stdout %q stderr %q", code, stdout.String(), stderr.String())
	}
	if want := "ok   acme/door: Open\n1 passed, 0 failed\n"; stdout.String() != want {
		t.Errorf("stdout = %q, want %q", stdout.String(), want)
	}
}
