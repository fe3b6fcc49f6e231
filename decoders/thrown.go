package decoders

import (
	"fmt"
	"runtime"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// What a script throws is a JavaScript value, and turning it into text may run script code:
// toString, valueOf, Symbol.toPrimitive, getters on an Error's name and message, Proxy traps.
// So it is turned into text inside the guard (time limit armed, recover in place), with the
// runtime's own String captured before the script ran, and only Go values leave the guard.
// Nothing outside the guard may call String, Error, Export or errors.As on a goja value: a
// *goja.Exception's Error and Unwrap run script code too.

// thrownError is an exception a script threw, already turned into text.
type thrownError struct {
	msg       string
	line, col int
}

func (e *thrownError) Error() string { return ErrThrown.Error() + ": " + e.msg }

func (e *thrownError) Is(target error) bool { return target == ErrThrown }

// maxTextDepth bounds how many exceptions thrown while turning an exception into text are
// themselves turned into text.
const maxTextDepth = 2

// settle turns an error goja returned into one that holds no JavaScript value. It must run
// inside the guard: it may run script code. An interrupt or a stack overflow while doing so
// is returned as such.
func (v *vm) settle(err error) error {
	ex, ok := err.(*goja.Exception)
	if !ok {
		return err // interrupts, stack overflows and Sluice's own errors hold no script value
	}
	msg, err := v.text(ex.Value(), 0)
	if err != nil {
		return err
	}
	line, col := position(ex.Stack())
	return &thrownError{msg: msg, line: line, col: col}
}

// text is String(val), at most maxMessageLength bytes. A conversion that throws is described,
// with what it threw, up to maxTextDepth levels.
func (v *vm) text(val goja.Value, depth int) (string, error) {
	o, ok := val.(*goja.Object)
	if !ok {
		if val == nil {
			return "undefined", nil
		}
		return clip(val.String()), nil // a primitive: no script code runs
	}
	s, err := v.str(goja.Undefined(), o)
	if err == nil {
		return clip(s.String()), nil // String returns a primitive string
	}
	ex, ok := err.(*goja.Exception)
	if !ok {
		return "", err // interrupted, or the stack overflowed
	}
	const what = "a value that cannot be converted to text"
	if depth == maxTextDepth {
		return what, nil
	}
	inner, err := v.text(ex.Value(), depth+1)
	if err != nil {
		return "", err
	}
	return what + " (" + inner + ")", nil
}

func clip(s string) string {
	if len(s) <= maxMessageLength {
		return s
	}
	n := maxMessageLength
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// panicText describes what a script runtime panicked with, without formatting a goja value
// (which would run script code).
func panicText(r any) string {
	switch x := r.(type) {
	case string:
		return x
	case runtime.Error:
		return x.Error()
	}
	return fmt.Sprintf("%T", r)
}
