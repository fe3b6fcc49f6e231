package decoders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// hostileBound is far above the 100 ms timeout: a script that is not stopped hangs the test
// well past it, so the bound only catches a sandbox that does not stop scripts at all, even on
// a starved machine.
const hostileBound = time.Minute

// hostileScript compiles src for an attack that must end with want: with the 100 ms timeout
// when want is ErrTimeout, else with a timeout of hostileBound, so that on a starved machine
// the guard's own error (stack overflow, output too large, an exception) is what stops it,
// never the clock.
func hostileScript(t *testing.T, src string, want error) *Script {
	t.Helper()
	cfg := testConfig()
	if want != ErrTimeout {
		cfg.Timeout = hostileBound
	}
	s, err := NewScript("test", "test.js", []byte(src), cfg, ScriptOptions{Log: zerolog.Nop()})
	if err != nil {
		t.Fatalf("NewScript: %v", err)
	}
	return s
}

// TestHostileScripts runs each hostile body when the first byte is 1, and a well-behaved
// decode otherwise, on a pool of one runtime: each attack must fail with a clear error and the
// next decode on the same pool must work.
func TestHostileScripts(t *testing.T) {
	tests := []struct {
		name string
		body string
		want error
		msg  string // substring of the error text
	}{
		{"infinite loop", `while (true) {}`, ErrTimeout, "script timed out"},
		{"unbounded recursion", `function f(n) { return f(n + 1) + 1 } return f(0);`, ErrStackOverflow, "call stack limit"},
		{"allocation loop", `var a = []; while (true) a.push(new Array(1000));`, ErrTimeout, "script timed out"},
		{"allocation loop of filled arrays", `var a = []; while (true) a.push(new Array(1000).fill(7));`, ErrTimeout, "script timed out"},
		{"huge string result", `var s = "x"; for (var i = 0; i < 20; i++) s += s; return {data: {s: s}};`, ErrOutputTooLarge, "output too large"},
		{"giant repeat", `return {data: {s: "x".repeat(1e10)}};`, ErrThrown, "decoder test at 2:29, device dev-1: script threw: RangeError: repeat: result of 10000000000 exceeds the limit"},
		{"giant typed array", `return {data: {b: new Uint8Array(1e10)}};`, ErrThrown, "RangeError: Uint8Array: length 10000000000 exceeds"},
		{"giant fill", `return {data: {b: new Array(1e9).fill(0)}};`, ErrThrown, "RangeError: fill"},
		{"giant join", `return {data: {b: new Array(1e9).join("ab")}};`, ErrThrown, "RangeError: join"},
		{"throw", `throw new TypeError("bad payload");`, ErrThrown, "decoder test at 2:7, device dev-1: script threw: TypeError: bad payload"},
		{"throw a string", `throw "oops";`, ErrThrown, "script threw: oops"},
		{"type error", `return input.nope.deeper;`, ErrThrown, "TypeError: Cannot read property 'deeper' of undefined"},
		{"garbage number", `return 42;`, ErrInvalidOutput, "decodeUplink returned a number, want an object"},
		{"garbage null", `return null;`, ErrInvalidOutput, "decodeUplink returned null"},
		{"garbage undefined", `return;`, ErrInvalidOutput, "decodeUplink returned undefined"},
		{"garbage data", `return {data: "text"};`, ErrInvalidOutput, "decodeUplink data is a string, want an object"},
		{"array data", `return {data: [1, 2]};`, ErrInvalidOutput, "decodeUplink data is an array, want an object"},
		{"cyclic data", `var o = {}; o.self = o; return {data: o};`, ErrInvalidOutput, "nested deeper than"},
		{"reported errors", `return {data: {}, errors: ["unknown fPort", "short payload"]};`, ErrReported, "decoder reported errors: unknown fPort; short payload"},
		{"throwing getter in the result", `return {data: {a: 1, get b() { throw new Error("getter") }}};`, ErrThrown, "script threw: Error: getter"},
		{"looping getter in the result", `return {data: {get b() { while (true) {} }}};`, ErrTimeout, "script timed out"},
		{"looping getter on errors", `return {data: {}, get errors() { while (true) {} }};`, ErrTimeout, "script timed out"},
		{"proxy result", `return {data: new Proxy({}, {ownKeys: function () { while (true) {} }})};`, ErrInvalidOutput, "decodeUplink data is an object that does not export as a plain object"},
		{"object in errors", `return {errors: [{toString: function () { while (true) {} }}]};`, ErrReported, "decoder reported errors: map[toString:"},
		{"runaway console", `while (true) console.log("spam");`, ErrTimeout, "script timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := hostileScript(t, "function decodeUplink(input) { if (input.bytes[0] === 1) {\n"+tt.body+"\n} return {data: {ok: true}} }", tt.want)
			start := time.Now()
			_, err := s.Decode(context.Background(), testInput(1))
			if elapsed := time.Since(start); elapsed > hostileBound {
				t.Errorf("decode took %v, want under %v", elapsed, hostileBound)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v (%T), want *DecodeError", err, err)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %q, want it to contain %q", err, tt.msg)
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

// TestHostileErrorPosition checks that errors name the script's line and column.
func TestHostileErrorPosition(t *testing.T) {
	s := mustScript(t, "function decodeUplink(input) {\n  var x = 1;\n  throw new Error('line three');\n}")
	_, err := s.Decode(context.Background(), testInput())
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want *DecodeError", err)
	}
	if de.Line != 3 || de.Column != 9 || de.Decoder != "test" || de.Device != "dev-1" {
		t.Errorf("error at %d:%d decoder %q device %q, want 3:9 test dev-1", de.Line, de.Column, de.Decoder, de.Device)
	}
	if want := "decoder test at 3:9, device dev-1: script threw: Error: line three"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}

// TestHostileAllocationHeap checks that the process stays healthy after an allocation loop:
// the interrupted runtime is dropped, so its garbage is collected.
func TestHostileAllocationHeap(t *testing.T) {
	s := mustScript(t, "function decodeUplink(input) { if (input.bytes[0] === 1) { var a = []; while (true) a.push(new Array(1000).fill(1)); } return {data: {}} }")
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 3; i++ {
		if _, err := s.Decode(context.Background(), testInput(1)); !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 64<<20 {
		t.Errorf("heap grew by %d MiB after the interrupted runtimes were dropped, want under 64 MiB", grown>>20)
	}
	if _, err := s.Decode(context.Background(), testInput(0)); err != nil {
		t.Errorf("next decode: %v", err)
	}
}

func TestHostileContextDeadline(t *testing.T) {
	cfg := testConfig()
	cfg.Timeout = 10 * time.Second
	s, err := NewScript("slow", "slow.js", []byte(`function Decoder() { while (true) {} }`), cfg, ScriptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = s.Decode(ctx, testInput())
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("err = %v, want ErrTimeout", err)
	}
	if elapsed := time.Since(start); elapsed > hostileBound {
		t.Errorf("decode took %v; the context deadline should cut the 10s timeout short", elapsed)
	}
}

// TestHostileConcurrent mixes well-behaved and looping calls from many goroutines on a pool of
// two runtimes: every good call gets its own answer, every bad one a timeout.
func TestHostileConcurrent(t *testing.T) {
	cfg := testConfig()
	cfg.PoolSize = 2
	s, err := NewScript("mixed", "mixed.js", []byte(`var calls = 0;
		function decodeUplink(input) {
			calls++;
			if (input.bytes[0] === 255) { while (true) {} }
			return {data: {echo: input.bytes[0] * 256 + input.bytes[1]}};
		}`), cfg, ScriptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 30; i++ {
				in := testInput(byte(g), byte(i))
				hostile := i%10 == 9
				if hostile {
					in = testInput(255, 0)
				}
				out, err := s.Decode(context.Background(), in)
				switch {
				case hostile && !errors.Is(err, ErrTimeout):
					errs <- fmt.Errorf("hostile call: err = %v, want ErrTimeout", err)
					return
				case !hostile && err != nil:
					errs <- fmt.Errorf("call %d/%d: %v", g, i, err)
					return
				case !hostile && out.Data["echo"] != float64(g*256+i):
					errs <- fmt.Errorf("call %d/%d: echo = %v, want %d", g, i, out.Data["echo"], g*256+i)
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestHostileContextCancel(t *testing.T) {
	cfg := testConfig()
	cfg.Timeout = 10 * time.Second
	s, err := NewScript("slow", "slow.js", []byte(`function Decoder(bytes) { while (bytes[0] === 1) {} return {ok: true} }`), cfg, ScriptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	start := time.Now()
	_, err = s.Decode(ctx, testInput(1))
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "script interrupted: context canceled") {
		t.Errorf("err = %v, want an interruption by context.Canceled", err)
	}
	if elapsed := time.Since(start); elapsed > hostileBound {
		t.Errorf("decode took %v; cancelling the context should stop it", elapsed)
	}
	if out, err := s.Decode(context.Background(), testInput(0)); err != nil || out.Data["ok"] != true {
		t.Errorf("next decode = %v, %v; want ok", out, err)
	}
}

// FuzzScriptOutput returns whatever JSON the fuzzer writes as a decoder's data: the export
// never panics, fails only with the documented causes, and what it returns encodes as JSON.
func FuzzScriptOutput(f *testing.F) {
	s, err := NewScript("echo", "echo.js", []byte(`function decodeUplink(input) {
		var v = JSON.parse(String.fromCharCode.apply(null, input.bytes));
		return {data: v, warnings: Array.isArray(v) ? v : []};
	}`), testConfig(), ScriptOptions{})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{`{"a":1}`, `{"a":{"b":[1,2,{"c":null}]}}`, `[1,2]`, `"x"`, `{"a":1e308}`, `{`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := s.Decode(context.Background(), &Input{Bytes: b, Device: "fuzz"})
		if err != nil {
			switch Reason(err) {
			case "exception", "invalid_output", "output_too_large":
				return
			}
			t.Fatalf("err = %v (reason %s)", err, Reason(err))
		}
		if _, err := json.Marshal(out.Data); err != nil {
			t.Fatalf("data does not encode: %v", err)
		}
	})
}
