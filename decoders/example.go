package decoders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

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
// (nil when it matches). Numbers match when they agree to 1e-9 (relative).
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

// reportedError is a decoder that returned a non-empty errors array, with what else it
// returned alongside.
type reportedError struct {
	errs     []string
	warnings []string
	data     map[string]any // nil when the decoder returned no object
}

func (e *reportedError) Error() string {
	return ErrReported.Error() + ": " + strings.Join(e.errs, "; ")
}

func (e *reportedError) Is(target error) bool { return target == ErrReported }

// ReportedErrors returns the errors array a decoder returned, nil when err is not that.
func ReportedErrors(err error) []string {
	var re *reportedError
	if errors.As(err, &re) {
		return re.errs
	}
	return nil
}

// Reported returns everything a decoder returned with its non-empty errors array: errors,
// warnings and data (nil when it returned none). ok is false when err is not that.
func Reported(err error) (errs, warnings []string, data map[string]any, ok bool) {
	var re *reportedError
	if !errors.As(err, &re) {
		return nil, nil, nil, false
	}
	return re.errs, re.warnings, re.data, true
}
