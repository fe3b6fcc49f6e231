package decoders

import (
	"fmt"
	"sync"
	"time"

	"github.com/dop251/goja"
)

// A script call's budget is CPU time, not wall-clock time: what the thread running the script
// spent, so that a busy machine (the goroutine descheduled, the GC stopping the world) cannot
// turn a valid decode into a timeout. CPU the Go runtime spends on that thread for the script
// (GC assists of its allocations) counts as the script's. A wall-clock ceiling bounds the call
// all the same; a call it ends before the script used its budget was starved, not slow.

// minRearm is the shortest wait between two looks at a call's CPU clock, so that a thread
// descheduled just short of its budget is not polled in a loop on a machine already starved.
const minRearm = time.Millisecond

// cpuReader reads the CPU clock lockThread named; replaced in tests.
type cpuReader func(clock int32) (time.Duration, error)

// watchdog interrupts the runtime of one vm when a call runs out of budget. Its timer fires
// when the budget has elapsed in wall-clock time; it then reads the CPU the script's thread
// used since the call began, and interrupts with ErrTimeout if that reached the budget, with a
// *starvedError if the wall-clock ceiling has passed, and otherwise looks again when the rest
// of the budget could at the earliest be used. It is safe for concurrent use: the timer's
// function and the call's goroutine meet under mu.
type watchdog struct {
	rt    *goja.Runtime
	read  cpuReader
	timer *time.Timer

	mu          sync.Mutex
	armed       bool          // a call is being watched
	budget      time.Duration // of CPU; of wall-clock time when !cpu
	ceiling     time.Duration // of wall-clock time
	cpu         bool          // clock names the CPU clock of the call's thread
	clock       int32
	cpuStart    time.Duration
	start       time.Time
	interrupted bool // the runtime was interrupted, for good: it is discarded, never re-armed
	overran     bool // the call outlasted its budget in wall-clock time, within its CPU budget
}

func newWatchdog(rt *goja.Runtime, read cpuReader) *watchdog {
	w := &watchdog{rt: rt, read: read}
	w.timer = time.AfterFunc(time.Hour, w.fire)
	w.timer.Stop()
	return w
}

// arm starts watching a call with a CPU budget and a wall-clock ceiling, on the thread whose
// CPU clock is clock (cpu false: no CPU clock, budget is wall-clock time).
func (w *watchdog) arm(budget, ceiling time.Duration, clock int32, cpu bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed, w.budget, w.ceiling, w.clock, w.overran = true, budget, ceiling, clock, false
	w.cpu = false
	if cpu {
		if start, err := w.read(clock); err == nil {
			w.cpu, w.cpuStart = true, start
		}
	}
	w.start = time.Now()
	w.timer.Reset(budget)
}

// disarm stops watching the call. interrupted reports that the runtime was interrupted (it
// must not be reused: the interrupt may land on its next call); overran that the call outlasted
// its budget in wall-clock time and was let go on because its thread used less CPU than that.
func (w *watchdog) disarm() (interrupted, overran bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = false
	w.timer.Stop()
	return w.interrupted, w.overran && !w.interrupted
}

// fire is the timer's function. A timer that fires as a call ends, or for a call that has
// since ended, finds nothing armed, or judges the call now armed by its own clocks.
func (w *watchdog) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.armed || w.interrupted {
		return
	}
	if !w.cpu {
		w.interrupt(ErrTimeout)
		return
	}
	now, err := w.read(w.clock)
	if err != nil { // cannot tell: judge by the wall clock, as without a CPU clock
		w.interrupt(ErrTimeout)
		return
	}
	used, wall := now-w.cpuStart, time.Since(w.start)
	switch {
	case used >= w.budget:
		w.interrupt(ErrTimeout)
	case wall >= w.ceiling:
		w.interrupt(&starvedError{used: used, budget: w.budget, wall: w.ceiling})
	default:
		w.overran = true
		next := min(w.budget-used, w.ceiling-wall)
		w.timer.Reset(max(next, minRearm))
	}
}

func (w *watchdog) interrupt(cause error) {
	w.interrupted = true
	w.rt.Interrupt(cause)
}

// overrun reports whether the watched call has outlasted its budget in wall-clock time and
// was let go on (for tests).
func (w *watchdog) overrun() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.overran
}

// starvedError is a call the wall-clock ceiling ended before the script used its CPU budget:
// the machine did not give its thread the CPU, the script was not slow.
type starvedError struct {
	used, budget, wall time.Duration
	retried            bool // and so was the automatic retry
}

func (e *starvedError) Error() string {
	s := fmt.Sprintf("%v: stopped by the %v wall-clock limit having used %v of its %v CPU budget",
		ErrStarved, e.wall, e.used.Round(time.Microsecond), e.budget)
	if e.retried {
		s += ", on the retry too"
	}
	return s
}

func (e *starvedError) Is(target error) bool { return target == ErrStarved }
