package decoders

import (
	"reflect"
	"strings"
	"testing"
)

func TestStringList(t *testing.T) {
	many := make([]any, 70)
	for i := range many {
		many[i] = "e"
	}
	long := strings.Repeat("x", 2000)
	tests := []struct {
		name string
		in   any
		want []string
	}{
		{"nil", nil, nil},
		{"empty", []any{}, nil},
		{"strings and others", []any{"a", 1.5, true, nil}, []string{"a", "1.5", "true", "<nil>"}},
		{"a lone string", "oops", []string{"oops"}},
		{"long", []any{long}, []string{long[:1024] + "…"}},
		{"many", many, append(strings.Split(strings.Repeat("e ", 64)[:127], " "), "(6 more)")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := stringList(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("stringList = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPlain(t *testing.T) {
	budget := 1 << 10
	got, err := plain(map[string]any{"i": int64(3), "f": float32(1.5), "b": []byte{1, 2}, "m": map[any]any{1: "x"}}, &budget, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"i": 3.0, "f": 1.5, "b": []any{1.0, 2.0}, "m": map[string]any{"1": "x"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plain = %#v, want %#v", got, want)
	}
	budget = 10
	if _, err := plain(map[string]any{"s": strings.Repeat("x", 100)}, &budget, 0); err != ErrOutputTooLarge {
		t.Errorf("err = %v, want ErrOutputTooLarge", err)
	}
}
