package decoders

import "testing"

func TestDifference(t *testing.T) {
	tests := []struct {
		name      string
		got, want any
		diff      string
	}{
		{"equal", map[string]any{"a": 1.0, "b": []any{"x", true}}, map[string]any{"a": 1.0, "b": []any{"x", true}}, ""},
		{"float tolerance", map[string]any{"a": 0.1 + 0.2}, map[string]any{"a": 0.3}, ""},
		{"different number", map[string]any{"a": 1.5}, map[string]any{"a": 1.0}, "data.a = 1.5, want 1"},
		{"missing key", map[string]any{}, map[string]any{"a": 1.0}, "data.a is missing, want 1"},
		{"unexpected key", map[string]any{"a": 1.0, "b": "x"}, map[string]any{"a": 1.0}, `data.b = "x" is unexpected`},
		{"null matches a left-out key", map[string]any{"a": 1.0, "b": nil}, map[string]any{"a": 1.0}, ""},
		{"null does not match a value", map[string]any{"b": nil}, map[string]any{"b": 2.0}, "data.b = null, want 2"},
		{"array length", map[string]any{"h": []any{1.0}}, map[string]any{"h": []any{1.0, 2.0}}, "data.h = [1], want [1,2]"},
		{"nested", map[string]any{"h": []any{map[string]any{"t": 1.0}}}, map[string]any{"h": []any{map[string]any{"t": 2.0}}}, "data.h[0].t = 1, want 2"},
		{"type", map[string]any{"a": "1"}, map[string]any{"a": 1.0}, `data.a = "1", want 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := difference("data", tt.got, tt.want); got != tt.diff {
				t.Errorf("difference = %q, want %q", got, tt.diff)
			}
		})
	}
}
