package decoders

import (
	"fmt"
	"strings"

	"github.com/dop251/goja"
	"github.com/rs/zerolog"
)

// maxNativeLength bounds, in characters or bytes, what one call of a native built-in that
// allocates in a single step (String.prototype.repeat, padStart, padEnd, Array.prototype.join
// and fill, ArrayBuffer and typed-array constructors) may produce. Native built-ins cannot be
// interrupted by the timeout, and one huge allocation would take the process down before it.
const maxNativeLength = 1 << 24

// maxLogMessage bounds one console message.
const maxLogMessage = 1 << 10

// preludeSource hardens a runtime before the user's script runs. It is the only code, besides
// the script, that a runtime ever runs; it installs guards and defines no globals.
const preludeSource = `(function (max) {
  "use strict";
  function guard(obj, name, size) {
    var orig = obj[name];
    if (typeof orig !== "function") return;
    Object.defineProperty(obj, name, {
      value: function () {
        var n = size(this, arguments);
        if (n > max) throw new RangeError(name + ": result of " + n + " exceeds the limit of " + max);
        return orig.apply(this, arguments);
      },
      writable: true, configurable: true, enumerable: false
    });
  }
  function guardCtor(name) {
    var C = globalThis[name];
    if (typeof C !== "function") return;
    var G = function () {
      if (new.target === undefined) throw new TypeError("Constructor " + name + " requires 'new'");
      var n = arguments[0];
      if (typeof n === "number" && n * (C.BYTES_PER_ELEMENT || 1) > max) {
        throw new RangeError(name + ": length " + n + " exceeds the limit of " + max);
      }
      return Reflect.construct(C, arguments, new.target === G ? C : new.target);
    };
    G.prototype = C.prototype;
    Object.setPrototypeOf(G, C);
    Object.defineProperty(G, "name", { value: name });
    Object.defineProperty(C.prototype, "constructor", { value: G, writable: true, configurable: true, enumerable: false });
    globalThis[name] = G;
  }
  var S = String.prototype, A = Array.prototype;
  guard(S, "repeat", function (s, a) { return String(s).length * Number(a[0]); });
  guard(S, "padStart", function (s, a) { return Number(a[0]); });
  guard(S, "padEnd", function (s, a) { return Number(a[0]); });
  guard(A, "join", function (s, a) { return (Number(s.length) - 1) * (a[0] === undefined ? 1 : String(a[0]).length); });
  guard(A, "fill", function (s) { return Number(s.length); });
  ["ArrayBuffer", "Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array",
   "Int32Array", "Uint32Array", "Float32Array", "Float64Array"].forEach(guardCtor);
})`

const preludeFile = "sluice-prelude.js"

var prelude = goja.MustCompile(preludeFile, preludeSource, true)

// harden prepares a fresh runtime: call-stack limit, console, guards on allocating built-ins.
// goja has no require, filesystem, network or timers; nothing here adds any.
func (v *vm) harden(maxCallStack int) error {
	rt := v.rt
	rt.SetMaxCallStackSize(maxCallStack)
	str, ok := goja.AssertFunction(rt.Get("String"))
	if !ok {
		return fmt.Errorf("runtime has no String function")
	}
	v.str = str
	console := rt.NewObject()
	for _, level := range []zerolog.Level{zerolog.DebugLevel, zerolog.InfoLevel, zerolog.WarnLevel, zerolog.ErrorLevel} {
		fn := v.consoleFunc(level)
		name := level.String()
		if err := console.Set(name, fn); err != nil {
			return err
		}
		if level == zerolog.InfoLevel {
			if err := console.Set("log", fn); err != nil {
				return err
			}
		}
	}
	if err := rt.Set("console", console); err != nil {
		return err
	}
	install, err := rt.RunProgram(prelude)
	if err != nil {
		return fmt.Errorf("prelude: %w", err)
	}
	fn, ok := goja.AssertFunction(install)
	if !ok {
		return fmt.Errorf("prelude: not a function")
	}
	if _, err := fn(goja.Undefined(), rt.ToValue(maxNativeLength)); err != nil {
		return fmt.Errorf("prelude: %w", err)
	}
	return nil
}

// consoleFunc logs a console call on the script's sampled logger with the device of the
// current call.
func (v *vm) consoleFunc(level zerolog.Level) func(goja.FunctionCall) goja.Value {
	return func(call goja.FunctionCall) goja.Value {
		ev := v.p.console.WithLevel(level)
		if ev == nil {
			return goja.Undefined()
		}
		var b strings.Builder
		for i, a := range call.Arguments {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(a.String())
			if b.Len() > maxLogMessage {
				break
			}
		}
		msg := b.String()
		if len(msg) > maxLogMessage {
			msg = msg[:maxLogMessage] + "…"
		}
		ev.Str(fieldDevice, v.device).Msg(msg)
		return goja.Undefined()
	}
}

// Log field keys, defined once.
const (
	fieldDecoder = "decoder"
	fieldDevice  = "device"
	fieldFile    = "file"
)
