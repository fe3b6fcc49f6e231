//go:build !linux

package decoders

import (
	"errors"
	"time"
)

// Without per-thread CPU clocks a call's budget is wall-clock time, as before CPU budgets:
// lockThread names no clock, and the watchdog interrupts when the budget has elapsed.

func lockThread() (clock int32, ok bool) { return 0, false }

func unlockThread() {}

func readThreadCPU(int32) (time.Duration, error) {
	return 0, errors.New("no per-thread CPU clock on this system")
}
