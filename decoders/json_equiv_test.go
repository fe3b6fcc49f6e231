package decoders

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
)

// legacyParseObject is parseObject without its one-pass path.
func legacyParseObject(b []byte) (map[string]any, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return parseObject(b) // the same checks come first on both paths
	}
	return decodeObject(b)
}

// FuzzParseObjectMatchesEncodingJSON holds the one-pass path of the json decoder to what
// encoding/json builds: the same object, or the same error.
func FuzzParseObjectMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"temperature":21.5,"humidity":40,"pressure":1013.25,"battery":3.61,"time":"2026-12-06T05:00:00.123456789Z"}`,
		`{"a":1,"a":2}`, `{"a":{"b":[1,-0,2.5e-3,true,false,null,"x"]}}`, `{"a":1e400}`, `{"a":"\u00e9"}`,
		`{"é":1}`, " {\"a\" : [ ] , \"b\":{}}\n", `{"a":1} x`, `{"a":01}`, `{"a":.5}`, `{"a":"` + "\x01" + `"}`,
		`{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
		`{"a":tru}`, `{"a":1,}`, `{}`, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, gotErr := parseObject(b)
		want, wantErr := legacyParseObject(b)
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Fatalf("%q: error %v, want %v", b, gotErr, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\ngot  %#v\nwant %#v", b, got, want)
		}
	})
}
