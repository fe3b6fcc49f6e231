//go:build linux

package decoders

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// lockThread locks the calling goroutine to its OS thread and returns the id of that thread's
// CPU clock, which any thread of the process may read (readThreadCPU) while the lock holds.
// The caller must call unlockThread when the script call is over. ok is false when the clock
// cannot be named; the goroutine is locked all the same.
//
// The id is what glibc's pthread_getcpuclockid and the kernel's MAKE_THREAD_CPUCLOCK build:
// the complement of the thread id shifted past the three low bits, which say a per-thread
// (CPUCLOCK_PERTHREAD_MASK, 4) scheduler clock (CPUCLOCK_SCHED, 2): all CPU time the thread
// ran, user and system, in nanoseconds.
func lockThread() (clock int32, ok bool) {
	runtime.LockOSThread()
	tid := unix.Gettid()
	return int32(^uint32(tid)<<3) | 6, tid > 0
}

func unlockThread() { runtime.UnlockOSThread() }

// readThreadCPU reads a thread's CPU clock named by lockThread.
func readThreadCPU(clock int32) (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(clock, &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()), nil
}
