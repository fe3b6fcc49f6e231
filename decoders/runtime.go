package decoders

import (
	"errors"
	"fmt"
	"time"

	"github.com/dop251/goja"
)

// entry is the calling convention a script was written for.
type entry int

const (
	entryDecodeUplink entry = iota + 1 // decodeUplink(input) → {data, warnings, errors}: TTS v3, ChirpStack v4
	entryDecode                        // Decode(fPort, bytes, variables) → data: ChirpStack v3
	entryDecoder                       // Decoder(bytes, port) → data: TTN v2
)

func (e entry) String() string {
	switch e {
	case entryDecodeUplink:
		return "decodeUplink"
	case entryDecode:
		return "Decode"
	case entryDecoder:
		return "Decoder"
	}
	return "none"
}

// vm is one goja runtime with one script loaded. It is used by one goroutine at a time and
// belongs to the pool of its program.
type vm struct {
	rt        *goja.Runtime
	p         *program
	entry     entry
	fn        goja.Callable
	normalize goja.Callable // nil when the script has no normalizeUplink
	date      goja.Value    // the Date constructor
	str       goja.Callable // the String function, taken before the script ran
	bytes     [256]goja.Value
	device    string    // device of the current call, for console logs
	broken    bool      // interrupted or panicked: never reuse
	wd        *watchdog // interrupts the runtime; armed only during a call
}

// newVM creates a runtime, hardens it, runs the script's top level under the time budget and
// finds its entry point.
func newVM(p *program) (*vm, error) {
	v := &vm{rt: goja.New(), p: p}
	v.wd = newWatchdog(v.rt, p.readCPU)
	if err := v.harden(p.cfg.MaxCallStack); err != nil {
		return nil, err
	}
	v.date = v.rt.Get("Date") // the real constructor, whatever the script does to the global
	// The top level and the look-up of the entry points (a global may be a getter) run under
	// the time budget.
	_, err := v.call(func() (goja.Value, error) {
		if _, err := v.rt.RunProgram(p.prg); err != nil {
			return nil, err
		}
		for _, c := range []struct {
			name string
			e    entry
		}{{"decodeUplink", entryDecodeUplink}, {"Decode", entryDecode}, {"Decoder", entryDecoder}} {
			if fn, ok := goja.AssertFunction(v.rt.Get(c.name)); ok {
				v.entry, v.fn = c.e, fn
				break
			}
		}
		if v.entry == entryDecodeUplink {
			v.normalize, _ = goja.AssertFunction(v.rt.Get("normalizeUplink"))
		}
		return nil, nil
	})
	if err != nil {
		return nil, err
	}
	if v.broken { // the timer fired just as the top level finished: an interrupt may be pending
		return nil, ErrTimeout
	}
	if v.fn == nil {
		return nil, errors.New("script defines none of decodeUplink(input), Decode(fPort, bytes, variables), Decoder(bytes, port)")
	}
	for i := range v.bytes {
		v.bytes[i] = v.rt.ToValue(i)
	}
	return v, nil
}

// call runs fn on the calling goroutine's OS thread, locked to it, with the script's budget:
// Timeout of that thread's CPU time, within the wall-clock ceiling (see watchdog; Timeout of
// wall-clock time where threads have no CPU clock). A runtime the watchdog interrupted, or
// that panicked, is marked broken and must be discarded, since an interrupt may land after fn
// returned. What the script threw is turned into text before the budget is lifted (see
// settle): the error returned holds no JavaScript value.
func (v *vm) call(fn func() (goja.Value, error)) (res goja.Value, err error) {
	clock, cpu := lockThread()
	defer unlockThread()
	v.wd.arm(v.p.cfg.Timeout, v.p.cfg.wallTimeout(), clock, cpu)
	defer func() {
		fired, overran := v.wd.disarm()
		if fired {
			v.broken = true
		}
		if overran {
			v.p.metrics.overrun(v.p.name)
		}
		if r := recover(); r != nil { // settle panicked: nothing of the script may be formatted
			v.broken = true
			res, err = nil, fmt.Errorf("script runtime panic: %s", panicText(r))
		}
		var (
			interrupted *goja.InterruptedError
			overflow    *goja.StackOverflowError
		)
		if errors.As(err, &interrupted) || errors.As(err, &overflow) {
			v.broken = true // start over with a fresh runtime rather than trust its state
		}
	}()
	res, err = v.protect(fn)
	if err != nil {
		res, err = nil, v.settle(err)
	}
	return res, err
}

// protect runs fn and turns a panic into an error: goja panics with the script's exception
// when script code it ran outside a call throws, e.g. a getter during Export.
func (v *vm) protect(fn func() (goja.Value, error)) (res goja.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			v.broken = true
			switch e := r.(type) {
			case *goja.Exception, *goja.InterruptedError, *goja.StackOverflowError:
				res, err = nil, e.(error)
			default:
				res, err = nil, fmt.Errorf("script runtime panic: %s", panicText(r))
			}
		}
	}()
	return fn()
}

// array builds a plain JS Array of the bytes, as The Things Stack passes them.
func (v *vm) array(b []byte) goja.Value {
	items := make([]any, len(b))
	for i, c := range b {
		items[i] = v.bytes[c]
	}
	return v.rt.NewArray(items...)
}

func (v *vm) variables(vars map[string]string) goja.Value {
	o := v.rt.NewObject()
	for k, val := range vars {
		_ = o.Set(k, val)
	}
	return o
}

// input is the argument of decodeUplink: {bytes, fPort, recvTime, variables}.
func (v *vm) input(in *Input, recv time.Time) (goja.Value, error) {
	o := v.rt.NewObject()
	_ = o.Set("bytes", v.array(in.Bytes))
	_ = o.Set("fPort", in.FPort)
	d, err := v.rt.New(v.date, v.rt.ToValue(recv.UnixMilli()))
	if err != nil {
		return nil, err
	}
	_ = o.Set("recvTime", d)
	_ = o.Set("variables", v.variables(in.Variables))
	return o, nil
}
