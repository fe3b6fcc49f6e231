package decoders

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/sluice-iot/sluice/internal/metrictest"
)

// watchedScript compiles src with a CPU budget of timeout and a wall-clock ceiling of wall,
// counted on a fresh registry; it returns the instrumented decoder and the script.
func watchedScript(t *testing.T, src string, timeout, wall time.Duration) (Decoder, *Script, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Timeout, cfg.WallTimeout = timeout, wall
	s, err := NewScript("test", "test.js", []byte(src), cfg, ScriptOptions{Log: zerolog.Nop(), Metrics: m})
	if err != nil {
		t.Fatalf("NewScript: %v", err)
	}
	return m.wrap(s), s, reg
}

// idleVM gives f the script's idle runtime (its pool holds one), the one the next decode uses.
func idleVM(t *testing.T, s *Script, f func(v *vm)) {
	t.Helper()
	p := s.cur.Load()
	v, err := p.pool.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f(v)
	p.pool.put(v)
}

// stoppedCPU makes every runtime of s, the idle one and those created from now on, see a CPU
// clock that never moves: a thread that never gets the CPU, however long the call lasts.
func stoppedCPU(t *testing.T, s *Script) {
	t.Helper()
	stopped := func(int32) (time.Duration, error) { return time.Second, nil }
	s.cur.Load().readCPU = stopped
	idleVM(t, s, func(v *vm) { v.wd.read = stopped })
}

// overrunScript loops until its watchdog has seen it outlast its budget in wall-clock time
// within its CPU budget, then returns: a valid decode that only a busy machine makes slow.
const overrunScript = `function decodeUplink(input) { while (!overrun()) {} return {data: {ok: true}} }`

func exposeOverrun(t *testing.T, s *Script) {
	t.Helper()
	idleVM(t, s, func(v *vm) { _ = v.rt.Set("overrun", v.wd.overrun) })
}

func checkCounters(t *testing.T, reg *prometheus.Registry, want map[string]float64) {
	t.Helper()
	for series, w := range want {
		name, label, _ := strings.Cut(series, " ")
		labels := prometheus.Labels{"decoder": "test"}
		if k, v, ok := strings.Cut(label, "="); ok {
			labels[k] = v
		}
		if got := metrictest.Labelled(t, reg, name, labels); got != w {
			t.Errorf("%s = %v, want %v", series, got, w)
		}
	}
}

// A call that outlasts its budget in wall-clock time while its thread used less CPU than
// that finishes, and is counted; by the wall clock alone it would have failed.
func TestWatchdogOverrunWithinCPUBudget(t *testing.T) {
	d, s, reg := watchedScript(t, overrunScript, 10*time.Millisecond, time.Minute)
	stoppedCPU(t, s)
	exposeOverrun(t, s)
	out, err := d.Decode(context.Background(), testInput(1))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if out.Data["ok"] != true {
		t.Errorf("data = %v, want ok", out.Data)
	}
	checkCounters(t, reg, map[string]float64{
		"sluice_decoder_wall_overruns_total":            1,
		"sluice_decoder_timeouts_total":                 0,
		"sluice_decoder_retries_total result=ok":        0,
		"sluice_decoder_failures_total reason=timeout":  0,
		"sluice_decoder_runtimes_total event=discarded": 0,
	})
}

// Without a CPU clock (other systems, or a clock that cannot be read) the budget is
// wall-clock time, as it was before: the same call is a timeout.
func TestWatchdogWithoutCPUClockIsWallClock(t *testing.T) {
	d, s, reg := watchedScript(t, overrunScript, 10*time.Millisecond, time.Minute)
	unreadable := func(int32) (time.Duration, error) { return 0, errors.New("no clock") }
	s.cur.Load().readCPU = unreadable
	idleVM(t, s, func(v *vm) { v.wd.read = unreadable })
	exposeOverrun(t, s)
	_, err := d.Decode(context.Background(), testInput(1))
	if !errors.Is(err, ErrTimeout) || !strings.HasPrefix(err.Error(), "decoder test at 1:") {
		t.Fatalf("err = %v, want ErrTimeout at the loop", err)
	}
	checkCounters(t, reg, map[string]float64{
		"sluice_decoder_wall_overruns_total":           0,
		"sluice_decoder_timeouts_total":                1,
		"sluice_decoder_failures_total reason=timeout": 1,
	})
}

// The wall-clock ceiling ends a call whose thread never got the CPU; the decode is retried
// once on a fresh runtime, and fails as starved, not as a timeout, when that is starved too.
func TestWatchdogCeilingRetriesThenStarved(t *testing.T) {
	d, s, reg := watchedScript(t, "function decodeUplink(input) {\n  if (input.bytes[0] === 1) while (true) {}\n  return {data: {ok: true}} }",
		10*time.Millisecond, 30*time.Millisecond)
	stoppedCPU(t, s)
	_, err := d.Decode(context.Background(), testInput(1))
	if !errors.Is(err, ErrStarved) || errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrStarved", err)
	}
	if got := Reason(err); got != "starved" {
		t.Errorf("Reason = %q, want starved", got)
	}
	const want = "script starved of CPU: stopped by the 30ms wall-clock limit having used 0s of its 10ms CPU budget, on the retry too"
	if msg := err.Error(); !strings.HasPrefix(msg, "decoder test at 2:") || !strings.HasSuffix(msg, ", device dev-1: "+want) {
		t.Errorf("err = %q, want \"decoder test at 2:…, device dev-1: %s\"", msg, want)
	}
	checkCounters(t, reg, map[string]float64{
		"sluice_decoder_retries_total result=starved":   1,
		"sluice_decoder_retries_total result=ok":        0,
		"sluice_decoder_failures_total reason=starved":  1,
		"sluice_decoder_failures_total reason=timeout":  0,
		"sluice_decoder_timeouts_total":                 0,
		"sluice_decoder_runtimes_total event=discarded": 2,
	})
	if out, err := d.Decode(context.Background(), testInput(0)); err != nil || out.Data["ok"] != true {
		t.Errorf("next decode = %v, %v; want ok", out, err)
	}
}

// A retry that gets the CPU succeeds, and the decode with it.
func TestWatchdogCeilingRetrySucceeds(t *testing.T) {
	d, s, reg := watchedScript(t, `function decodeUplink(input) { if (typeof stall !== "undefined") while (true) {} return {data: {ok: true}} }`,
		10*time.Millisecond, 30*time.Millisecond)
	stoppedCPU(t, s)
	idleVM(t, s, func(v *vm) { _ = v.rt.Set("stall", true) }) // only the first runtime stalls
	out, err := d.Decode(context.Background(), testInput(1))
	if err != nil || out.Data["ok"] != true {
		t.Fatalf("decode = %v, %v; want ok after the retry", out, err)
	}
	checkCounters(t, reg, map[string]float64{
		"sluice_decoder_retries_total result=ok":       1,
		"sluice_decoder_retries_total result=starved":  0,
		"sluice_decoder_failures_total reason=starved": 0,
		"sluice_decoder_calls_total":                   1,
	})
}

// With the real thread CPU clock: on one P shared with goroutines that spin, the script's
// thread gets a fraction of the CPU; the call outlasts its budget in wall-clock time, is let
// finish, and is counted. The script runs until that happened, so no timing decides the test.
func TestWatchdogStarvedThreadFinishes(t *testing.T) {
	if _, ok := lockThread(); !ok {
		unlockThread()
		t.Skip("no per-thread CPU clock on this system: the budget is wall-clock time")
	}
	unlockThread()
	d, s, reg := watchedScript(t, overrunScript, 50*time.Millisecond, time.Minute)
	exposeOverrun(t, s)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var (
		stop atomic.Bool
		wg   sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
			}
		})
	}
	out, err := d.Decode(context.Background(), testInput(1))
	stop.Store(true)
	wg.Wait()
	if err != nil || out.Data["ok"] != true {
		t.Fatalf("decode = %v, %v; want ok", out, err)
	}
	checkCounters(t, reg, map[string]float64{
		"sluice_decoder_wall_overruns_total": 1,
		"sluice_decoder_timeouts_total":      0,
	})
}
