package decoders

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Example is one test vector: an uplink and the output The Things Stack would show for it.
// In YAML the uplink's fields may also be nested under "input", as The Things Stack device
// repository writes them, and "normalizedOutput" gives the expected normalized payload.
type Example struct {
	Description string            `yaml:"description"`
	FPort       int               `yaml:"fPort"`
	Bytes       Bytes             `yaml:"bytes"`
	Variables   map[string]string `yaml:"variables,omitempty"`
	RecvTime    time.Time         `yaml:"recvTime,omitempty"`
	Output      ExampleOutput     `yaml:"output"`
	// Normalized is the expected normalized payload (one object per measurement); nil means
	// not checked.
	Normalized []map[string]any `yaml:"-"`
}

// exampleInput is the uplink of an example in The Things Stack's layout.
type exampleInput struct {
	FPort     int               `yaml:"fPort"`
	Bytes     Bytes             `yaml:"bytes"`
	Variables map[string]string `yaml:"variables"`
	RecvTime  time.Time         `yaml:"recvTime"`
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (ex *Example) UnmarshalYAML(n *yaml.Node) error {
	type plainExample Example
	var raw struct {
		plainExample `yaml:",inline"`
		Input        *exampleInput `yaml:"input"`
		Normalized   *struct {
			Data     any      `yaml:"data"`
			Warnings []string `yaml:"warnings"`
			Errors   []string `yaml:"errors"`
		} `yaml:"normalizedOutput"`
	}
	if err := n.Decode(&raw); err != nil {
		return err
	}
	*ex = Example(raw.plainExample)
	if in := raw.Input; in != nil {
		ex.FPort, ex.Bytes, ex.Variables, ex.RecvTime = in.FPort, in.Bytes, in.Variables, in.RecvTime
	}
	if raw.Normalized != nil {
		switch d := raw.Normalized.Data.(type) {
		case map[string]any:
			ex.Normalized = []map[string]any{d}
		case []any:
			ex.Normalized = []map[string]any{}
			for _, m := range d {
				if o, ok := m.(map[string]any); ok {
					ex.Normalized = append(ex.Normalized, o)
				}
			}
		}
	}
	return nil
}

// ExampleOutput is the expected result: data, warnings, and errors when decoding must fail.
type ExampleOutput struct {
	Data     map[string]any `yaml:"data"`
	Warnings []string       `yaml:"warnings"`
	Errors   []string       `yaml:"errors"`
}

// Bytes is a payload in YAML: a hex string ("01 67 00 FF", spaces allowed) or a list of
// numbers as The Things Stack device repository writes them ([1, 103, 0, 255]).
type Bytes []byte

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *Bytes) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		raw, err := hex.DecodeString(strings.Join(strings.Fields(n.Value), ""))
		if err != nil {
			return fmt.Errorf("line %d: bytes %q is not hex", n.Line, n.Value)
		}
		*b = raw
		return nil
	case yaml.SequenceNode:
		var nums []int
		if err := n.Decode(&nums); err != nil {
			return err
		}
		out := make([]byte, len(nums))
		for i, v := range nums {
			if v < 0 || v > 255 {
				return fmt.Errorf("line %d: byte %d is %d, want 0 to 255", n.Line, i, v)
			}
			out[i] = byte(v)
		}
		*b = out
		return nil
	}
	return fmt.Errorf("line %d: bytes must be a hex string or a list of numbers", n.Line)
}

// exampleRecvTime is the receive time of an example that gives none.
var exampleRecvTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Input returns the uplink of an example.
func (ex *Example) Input() *Input {
	t := ex.RecvTime
	if t.IsZero() {
		t = exampleRecvTime
	}
	return &Input{Bytes: ex.Bytes, FPort: ex.FPort, RecvTime: t, Variables: ex.Variables, Device: "example"}
}

// Run decodes the example with d and reports how the result differs from the expected output
// (nil when it matches). Numbers match when they agree to 1e-9 (relative); a null the decoder
// returned (an undefined property) matches a key the example leaves out.
func (ex *Example) Run(ctx context.Context, d Decoder) error {
	out, err := d.Decode(ctx, ex.Input())
	if len(ex.Output.Errors) > 0 {
		got := ReportedErrors(err)
		if got == nil {
			if err != nil {
				return fmt.Errorf("want errors %q, got failure: %v", ex.Output.Errors, err)
			}
			return fmt.Errorf("want errors %q, got data %s", ex.Output.Errors, mustJSON(out.Data))
		}
		if !equalStrings(got, ex.Output.Errors) {
			return fmt.Errorf("errors = %q, want %q", got, ex.Output.Errors)
		}
		return nil
	}
	if err != nil {
		return err
	}
	want, err := jsonPlain(ex.Output.Data)
	if err != nil {
		return fmt.Errorf("expected data: %w", err)
	}
	got, err := jsonPlain(out.Data)
	if err != nil {
		return fmt.Errorf("decoded data: %w", err)
	}
	if want == nil {
		want = map[string]any{}
	}
	if diff := difference("data", got, want); diff != "" {
		return errors.New(diff)
	}
	if !equalStrings(out.Warnings, ex.Output.Warnings) {
		return fmt.Errorf("warnings = %q, want %q", out.Warnings, ex.Output.Warnings)
	}
	if ex.Normalized != nil {
		want, err := jsonPlain(ex.Normalized)
		if err != nil {
			return fmt.Errorf("expected normalized output: %w", err)
		}
		got, err := jsonPlain(out.Normalized)
		if err != nil {
			return fmt.Errorf("normalized output: %w", err)
		}
		if got == nil {
			got = []any{}
		}
		if diff := difference("normalized", got, want); diff != "" {
			return errors.New(diff)
		}
	}
	return nil
}

// jsonPlain round-trips v through JSON, so that YAML and decoder values compare alike.
func jsonPlain(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// difference describes the first difference between got and want at path, "" when equal.
func difference(path string, got, want any) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s = %s, want %s", path, mustJSON(got), mustJSON(want))
		}
		keys := make([]string, 0, len(w)+len(g))
		for k := range w {
			keys = append(keys, k)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			gv, gok := g[k]
			wv, wok := w[k]
			switch {
			case !gok:
				return fmt.Sprintf("%s.%s is missing, want %s", path, k, mustJSON(wv))
			case !wok && gv == nil:
				continue // undefined became null; the example leaves it out, as JS comparisons do
			case !wok:
				return fmt.Sprintf("%s.%s = %s is unexpected", path, k, mustJSON(gv))
			}
			if d := difference(path+"."+k, gv, wv); d != "" {
				return d
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s = %s, want %s", path, mustJSON(got), mustJSON(want))
		}
		for i := range w {
			if d := difference(fmt.Sprintf("%s[%d]", path, i), g[i], w[i]); d != "" {
				return d
			}
		}
		return ""
	case float64:
		g, ok := got.(float64)
		if !ok || math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) {
			return fmt.Sprintf("%s = %s, want %s", path, mustJSON(got), mustJSON(want))
		}
		return ""
	default:
		if got != want {
			return fmt.Sprintf("%s = %s, want %s", path, mustJSON(got), mustJSON(want))
		}
		return ""
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
