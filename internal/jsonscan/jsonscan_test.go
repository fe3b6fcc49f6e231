package jsonscan

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// Both policies read any value as encoding/json does, Explain all of JSON and Plain what it
// does not give up on; Skip accepts exactly what is valid JSON.
func FuzzScanner(f *testing.F) {
	for _, in := range []string{
		`{"a":[1,-0.5e3,true,false,null],"b":{"c":"d"}}`, `"é"`, `"a\"b\u0041"`, `1e400`, `01`,
		`[1,]`, `{"a" 1}`, `"\x01"`, `tru`, `{"a":1}x`, ` [ ] `, `"\ud800"`, "\"\xff\"",
	} {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if bytes.Count(in, []byte("["))+bytes.Count(in, []byte("{")) > 5000 {
			return // encoding/json stops at 10,000 levels; Explain does not
		}
		var want any
		wantErr := json.Unmarshal(in, &want)
		for _, p := range []Policy{Explain, Plain} {
			s := New(in, p)
			got, ok := s.Value()
			ok = ok && (s.End() || s.Fail("data after the top-level value"))
			switch {
			case ok && wantErr != nil:
				t.Fatalf("policy %d: read %#v, encoding/json: %v", p, got, wantErr)
			case !ok && p == Explain && wantErr == nil:
				t.Fatalf("explain: %v, encoding/json read %#v", s.Err(), want)
			case !ok && p == Explain && s.Err() == nil:
				t.Fatal("explain: failed without an error")
			case ok && !reflect.DeepEqual(got, want):
				t.Fatalf("policy %d: got %#v, encoding/json %#v", p, got, want)
			}
			s = New(in, p)
			valid := s.Skip() && s.End()
			if valid != json.Valid(in) && (p == Explain || valid) {
				t.Fatalf("policy %d: Skip %v, json.Valid %v", p, valid, !valid)
			}
		}
	})
}

// Explain says what is wrong and where; Plain gives up on what needs encoding/json.
func TestPolicies(t *testing.T) {
	for _, c := range []struct {
		in, explain string
		plainOK     bool
	}{
		{``, "invalid JSON at byte 0: want a value", false},
		{`{"a":1`, "invalid JSON at byte 6: want ',' or '}'", false},
		{`{"a" 1}`, "invalid JSON at byte 5: want ':'", false},
		{`[1 2]`, "invalid JSON at byte 3: want ',' or ']'", false},
		{`1.`, "invalid JSON at byte 0: want digits after '.'", false},
		{`1e400`, "invalid JSON at byte 5: number 1e400: value out of range", false},
		{`"\u00e9"`, "", false},
		{`"é"`, "", false},
		{`{"a":"b"}`, "", true},
	} {
		s := New([]byte(c.in), Explain)
		_, ok := s.Value()
		if got := errText(s.Err()); got != c.explain || ok != (c.explain == "") {
			t.Errorf("explain %s: got %v %q, want %q", c.in, ok, got, c.explain)
		}
		s = New([]byte(c.in), Plain)
		if _, ok := s.Value(); ok != c.plainOK {
			t.Errorf("plain %s: got %v, want %v", c.in, ok, c.plainOK)
		}
	}
	var deep []byte
	for range MaxDepth + 1 {
		deep = append(deep, '[')
	}
	for range MaxDepth + 1 {
		deep = append(deep, ']')
	}
	if s := New(deep, Plain); s.Skip() {
		t.Errorf("plain: read %d levels, want at most %d", MaxDepth+1, MaxDepth)
	}
	if s := New(deep, Explain); !s.Skip() {
		t.Errorf("explain: %v", s.Err())
	}
}

// Fields gives up, with Plain, on a key encoding/json would match in another letter case or
// a member given twice.
func TestFieldsPlain(t *testing.T) {
	for in, want := range map[string]bool{
		`{"a":1,"b":2,"c":3}`: true,
		`{"A":1}`:             false,
		`{"a":1,"a":2}`:       false,
	} {
		s := New([]byte(in), Plain)
		var got []int64
		ok := s.Fields([]string{"a", "b"}, func(i int) bool {
			v, ok := s.Int(64)
			got = append(got, v)
			return ok
		})
		if ok != want || ok && !reflect.DeepEqual(got, []int64{1, 2}) {
			t.Errorf("%s: got %v %v, want %v", in, ok, got, want)
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
