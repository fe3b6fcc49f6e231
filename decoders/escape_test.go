package decoders

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// escapeRoutes are values a script throws or returns whose conversion to Go runs script code:
// toString, valueOf, Symbol.toPrimitive, getters and Proxy traps. Each must run under the
// decoder's time limit and recover, never after it: a loop there would hang the caller with
// no PUBACK, no log and a core busy for good, and an exception there would crash the process.
var escapeRoutes = []struct {
	name string
	body string // statements run when the first byte is 1
	want error
	msg  string // substring of the error text
}{
	{"thrown toString loops", `throw {toString: function () { while (true) {} }};`, ErrTimeout, "script timed out"},
	{"thrown valueOf loops", `throw {toString: null, valueOf: function () { while (true) {} }};`, ErrTimeout, "script timed out"},
	{"thrown Symbol.toPrimitive loops", `var o = {}; o[Symbol.toPrimitive] = function () { while (true) {} }; throw o;`, ErrTimeout, "script timed out"},
	{"thrown Error with a looping message getter", `var e = new Error("x"); Object.defineProperty(e, "message", {get: function () { while (true) {} }}); throw e;`, ErrTimeout, "script timed out"},
	{"thrown Error with a looping name getter", `var e = new TypeError("x"); Object.defineProperty(e, "name", {get: function () { while (true) {} }}); throw e;`, ErrTimeout, "script timed out"},
	{"thrown Proxy with a looping get trap", `throw new Proxy({}, {get: function () { while (true) {} }});`, ErrTimeout, "script timed out"},
	{"thrown Proxy with a looping getPrototypeOf trap", `throw new Proxy({}, {getPrototypeOf: function () { while (true) {} }});`, ErrThrown, "script threw: [object Object]"},
	{"thrown toString recurses", `var o = {toString: function () { return String(o) }}; throw o;`, ErrStackOverflow, "call stack limit"},
	{"thrown toString throws", `throw {toString: function () { throw new RangeError("inner") }};`, ErrThrown, "script threw: a value that cannot be converted to text (RangeError: inner)"},
	{"thrown toString returns an object", `throw {toString: function () { return {} }, valueOf: function () { return {} }};`, ErrThrown, "script threw: a value that cannot be converted to text (TypeError: "},
	{"thrown toString throws a hostile value", `var o = {toString: function () { throw o }}; throw o;`, ErrThrown, "script threw: a value that cannot be converted to text (a value that cannot be converted to text (a value that cannot be converted to text))"},
	{"thrown toString returns a huge string", `throw {toString: function () { return "x".repeat(1 << 20) }};`, ErrThrown, "script threw: xxxx"},
	{"returned Proxy with a looping get trap", `return new Proxy({}, {get: function () { while (true) {} }});`, ErrTimeout, "script timed out"},
	{"returned errors Proxy with a looping get trap", `return {errors: new Proxy([], {get: function () { while (true) {} }})};`, ErrReported, "decoder reported errors: "},
	{"returned warnings entry with a looping valueOf", `return {data: {}, errors: ["e"], warnings: [{valueOf: function () { while (true) {} }}]};`, ErrReported, "decoder reported errors: e"},
	{"returned data with a looping Symbol.toPrimitive", `var o = {}; o[Symbol.toPrimitive] = function () { while (true) {} }; return {data: {v: o}};`, nil, ""},
	{"returned data getter throws a hostile value", `return {data: {get v() { throw {toString: function () { while (true) {} }} }}};`, ErrTimeout, "script timed out"},
}

// TestNoUserCodeOutsideGuard decodes each escape route on a pool of one runtime: it must end
// within the bound with the expected error, and the next decode must work.
func TestNoUserCodeOutsideGuard(t *testing.T) {
	for _, tt := range escapeRoutes {
		t.Run(tt.name, func(t *testing.T) {
			s := hostileScript(t, "function decodeUplink(input) { if (input.bytes[0] === 1) {\n"+tt.body+"\n} return {data: {ok: true}} }", tt.want)
			err := within(t, func() error { _, err := s.Decode(context.Background(), testInput(1)); return err })
			checkEscape(t, err, tt.want, tt.msg)
			if tt.want != nil {
				var de *DecodeError
				if !errors.As(err, &de) {
					t.Errorf("err = %v (%T), want *DecodeError", err, err)
				}
			}
			out, err := s.Decode(context.Background(), testInput(0))
			if err != nil {
				t.Fatalf("next decode: %v", err)
			}
			if out.Data["ok"] != true {
				t.Errorf("next decode data = %v, want ok", out.Data)
			}
		})
	}
}

// TestNoUserCodeOutsideGuardAtLoad throws each escape route from a script's top level: loading
// it (at start-up, on reload, in `sluice check`) must fail promptly with a *CompileError.
func TestNoUserCodeOutsideGuardAtLoad(t *testing.T) {
	for _, tt := range escapeRoutes {
		if !strings.HasPrefix(tt.name, "thrown") {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			src := "(function () {\n" + tt.body + "\n})();\nfunction decodeUplink(input) { return {data: {}} }"
			cfg := testConfig()
			if tt.want != ErrTimeout {
				cfg.Timeout = hostileBound // the guard's own error, never the clock (see hostileScript)
			}
			err := within(t, func() error {
				_, err := NewScript("test", "test.js", []byte(src), cfg, ScriptOptions{Log: zerolog.Nop()})
				return err
			})
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v (%T), want *CompileError", err, err)
			}
			checkEscape(t, err, tt.want, tt.msg)
		})
	}
}

// within runs fn and fails the test if it does not return within hostileBound. A script that
// escaped its guard keeps its goroutine busy: the test reports it rather than hang.
func within(t *testing.T, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- &escaped{r}
			}
		}()
		done <- fn()
	}()
	select {
	case err := <-done:
		var esc *escaped
		if errors.As(err, &esc) {
			t.Fatalf("a %T panic escaped the guard", esc.r) // printing it could run script code
		}
		return err
	case <-time.After(hostileBound):
		t.Fatalf("did not return within %v: script code ran outside the time limit", hostileBound)
		return nil
	}
}

type escaped struct{ r any }

func (e *escaped) Error() string { return "escaped panic" }

func checkEscape(t *testing.T, err, want error, msg string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Errorf("err = %v, want none", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Errorf("err = %v, want %v", err, want)
	}
	if err != nil && !strings.Contains(err.Error(), msg) {
		t.Errorf("err = %q, want it to contain %q", err, msg)
	}
	if err != nil && len(err.Error()) > 2*maxMessageLength {
		t.Errorf("error text is %d bytes, want it bounded", len(err.Error()))
	}
}
