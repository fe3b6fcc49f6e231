package decoders

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// templatesDir is the template library shipped with Sluice.
const templatesDir = "../configs/templates"

func loadTemplates(t testing.TB) []*Template {
	t.Helper()
	dirs, err := FindTemplates(templatesDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []*Template
	for _, dir := range dirs {
		tpl, err := LoadTemplate(dir, TemplateID(templatesDir, dir))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tpl)
	}
	return out
}

// TestTemplateLibrary checks that the shipped library covers the common sensor kinds and
// that every template has examples, including one that must fail.
func TestTemplateLibrary(t *testing.T) {
	tpls := loadTemplates(t)
	if len(tpls) < 8 {
		t.Errorf("%d templates, want at least 8", len(tpls))
	}
	for _, tpl := range tpls {
		if len(tpl.Examples) < 2 {
			t.Errorf("%s: %d examples, want at least 2", tpl.ID, len(tpl.Examples))
		}
		if tpl.Source == "" || tpl.Description == "" {
			t.Errorf("%s: source and description must be set", tpl.ID)
		}
	}
}

// TestTemplateExamples runs every example vector of every template, and compares the readings
// they yield with testdata/templates/<vendor>_<model>.golden.json (rewrite with -update).
func TestTemplateExamples(t *testing.T) {
	for _, tpl := range loadTemplates(t) {
		t.Run(tpl.ID, func(t *testing.T) {
			s, err := tpl.Compile(DefaultConfig(), ScriptOptions{Log: zerolog.Nop()})
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			type golden struct {
				Description string `json:"description"`
				Output      any    `json:"output"`
			}
			var got []golden
			for _, ex := range tpl.Examples {
				t.Run(ex.Description, func(t *testing.T) {
					if err := ex.Run(context.Background(), s); err != nil {
						t.Errorf("fPort %d bytes %X: %v", ex.FPort, []byte(ex.Bytes), err)
					}
				})
				out, err := s.Decode(context.Background(), ex.Input())
				if err != nil {
					got = append(got, golden{ex.Description, map[string]any{"error": err.Error()}})
					continue
				}
				got = append(got, golden{ex.Description, map[string]any{"readings": out.Readings, "normalized": out.Normalized}})
			}
			checkGolden(t, filepath.Join("testdata", "templates", strings.ReplaceAll(tpl.ID, "/", "_")+".golden.json"), got)
		})
	}
}

func checkGolden(t *testing.T, path string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from what the decoder yields now:\n%s\n(run go test -update after checking the change)", path, got)
	}
}

func TestLoadTemplateErrors(t *testing.T) {
	dir := t.TempDir()
	tplDir := filepath.Join(dir, "acme", "widget")
	if err := os.MkdirAll(tplDir, 0o755); err != nil {
		t.Fatal(err)
	}
	yaml := "name: ''\nvendor: other\nmodel: widget\nexamples:\n  - fPort: 300\n    bytes: 01 02\n"
	if err := os.WriteFile(filepath.Join(tplDir, TemplateFile), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadTemplate(tplDir, "acme/widget")
	if err == nil {
		t.Fatal("LoadTemplate succeeded, want errors")
	}
	for _, want := range []string{
		"decoder: stat",
		"examples[0].fPort: 300 is out of range 0 to 255",
		"name: is empty",
		"vendor/model: other/widget does not match the directory acme/widget",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v\nwant it to contain %q", err, want)
		}
	}
}

func TestExampleBytes(t *testing.T) {
	tests := []struct {
		yaml string
		want []byte
		err  string
	}{
		{"bytes: 01 6F ff", []byte{1, 0x6f, 0xff}, ""},
		{"bytes: [1, 111, 255]", []byte{1, 0x6f, 0xff}, ""},
		{"bytes: [1, 256]", nil, "byte 1 is 256"},
		{"bytes: xyz", nil, "is not hex"},
	}
	for _, tt := range tests {
		var ex Example
		err := yamlUnmarshal([]byte(tt.yaml), &ex)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err = %v, want %q", tt.yaml, err, tt.err)
			}
			continue
		}
		if err != nil || string(ex.Bytes) != string(tt.want) {
			t.Errorf("%s: bytes = %X, %v; want %X", tt.yaml, []byte(ex.Bytes), err, tt.want)
		}
	}
}

// FuzzTemplateDecoders feeds random bytes to every template decoder: each either decodes or
// fails with a *DecodeError the script reported or threw, never a timeout or a crash.
func FuzzTemplateDecoders(f *testing.F) {
	tpls := loadTemplates(f)
	var scripts []*Script
	for _, tpl := range tpls {
		s, err := tpl.Compile(DefaultConfig(), ScriptOptions{Log: zerolog.Nop()})
		if err != nil {
			f.Fatal(err)
		}
		scripts = append(scripts, s)
		for _, ex := range tpl.Examples {
			f.Add(uint8(len(scripts)-1), uint8(ex.FPort), []byte(ex.Bytes))
		}
	}
	f.Fuzz(func(t *testing.T, which, port uint8, b []byte) {
		s := scripts[int(which)%len(scripts)]
		_, err := s.Decode(context.Background(), &Input{Bytes: b, FPort: int(port), Device: "fuzz"})
		if err == nil {
			return
		}
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("%s: err = %v (%T), want *DecodeError", s.Name(), err, err)
		}
		switch Reason(err) {
		case "reported", "exception", "invalid_output":
		default:
			t.Fatalf("%s on % X: %v", s.Name(), b, err)
		}
	})
}

// TestCodec runs a decoder laid out as in The Things Stack device repository: a codec file
// with uplinkDecoder.fileName and examples under input/output/normalizedOutput.
func TestCodec(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "acme")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "th1.js"), `function decodeUplink(input) {
		if (input.fPort !== 1) return {errors: ["unknown FPort"]};
		return {data: {t: input.bytes[0] / 2, extra: input.bytes[5]}};
	}
	function normalizeUplink(input) { return {data: {air: {temperature: input.data.t}}} }`)
	writeFile(t, filepath.Join(dir, "th1-codec.yaml"), `uplinkDecoder:
  fileName: th1.js
  examples:
    - description: Temperature
      input:
        fPort: 1
        bytes: [0x2B, 0x01]
      output:
        data: { 't': 21.5, 'extra': null }
      normalizedOutput:
        data:
          - air:
              temperature: 21.5
    - description: Unknown FPort
      input:
        fPort: 42
        bytes: [0x0B]
      output:
        errors:
          - unknown FPort
downlinkEncoder:
  fileName: th1.js
`)
	tpl, err := LoadCodec(filepath.Join(dir, "th1-codec.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if tpl.ID != "acme/th1" || len(tpl.Examples) != 2 {
		t.Fatalf("template %s with %d examples, want acme/th1 with 2", tpl.ID, len(tpl.Examples))
	}
	s, err := tpl.Compile(DefaultConfig(), ScriptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range tpl.Examples {
		if err := ex.Run(context.Background(), s); err != nil {
			t.Errorf("%s: %v", ex.Description, err)
		}
	}
	// A wrong normalized expectation is caught.
	ex := tpl.Examples[0]
	ex.Normalized = []map[string]any{{"air": map[string]any{"temperature": 20.0}}}
	if err := ex.Run(context.Background(), s); err == nil || err.Error() != "normalized[0].air.temperature = 21.5, want 20" {
		t.Errorf("err = %v, want the normalized difference", err)
	}
}
