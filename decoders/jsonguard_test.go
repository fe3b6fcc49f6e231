package decoders

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckJSON(t *testing.T) {
	deep := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	for _, tt := range []struct {
		name, in, want string
	}{
		{"plain", `{"t": 1, "s": "é ✓ \"{[" }`, ""},
		{"brackets in strings do not nest", `{"s": "` + strings.Repeat("[", 100) + `\\"}`, ""},
		{"64 levels", deep(64), ""},
		{"65 levels", deep(65), "invalid payload: nested deeper than 64 levels at byte 320"},
		{"10000 levels", deep(10000), "invalid payload: nested deeper than 64 levels at byte 320"},
		{"arrays", `{"a":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + "}", "invalid payload: nested deeper than 64 levels at byte 68"},
		{"bad byte in a key", "{\"t\xffa\": 1}", "invalid payload: not valid UTF-8 at byte 3"},
		{"bad byte in a value", "{\"t\": \"\xc3\"}", "invalid payload: not valid UTF-8 at byte 7"},
		{"surrogate half", "{\"t\xed\xa0\x80\": 1}", "invalid payload: not valid UTF-8 at byte 3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := checkJSON([]byte(tt.in))
			got := ""
			if err != nil {
				got = err.Error()
				if !errors.Is(err, ErrPayload) {
					t.Errorf("err = %v, want ErrPayload", err)
				}
			}
			if got != tt.want {
				t.Errorf("checkJSON: got %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzCheckJSON: what checkJSON lets through is valid UTF-8, and valid JSON it lets through
// decodes to the very strings it holds (nothing replaced by U+FFFD).
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{`{"a":1}`, "{\"\xff\":1}", `[[[[]]]]`, `{"s":"\\"}`, `"\u00e9"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkJSON(b) != nil {
			return
		}
		if !utf8.Valid(b) {
			t.Fatalf("invalid UTF-8 let through: %q", b)
		}
		var v any
		if json.Unmarshal(b, &v) != nil {
			return
		}
		if !strings.Contains(string(b), "\\u") && strings.ContainsRune(jsonText(t, v), utf8.RuneError) && !strings.ContainsRune(string(b), utf8.RuneError) {
			t.Fatalf("%q decoded with a replacement character", b)
		}
	})
}

func jsonText(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
