package decoders

import (
	"context"
	"testing"
	"time"

	"github.com/dop251/goja"
)

// benchScript is a typical device decoder: 11 bytes in, 4 fields out.
const benchScript = `function decodeUplink(input) {
  var b = input.bytes;
  return {
    data: {
      battery: ((b[0] << 8) | b[1]) / 1000,
      temperature: (((b[2] << 24) >> 16) | b[3]) / 100,
      humidity: ((b[4] << 8) | b[5]) / 10,
      co2: (b[6] << 8) | b[7]
    },
    warnings: [],
    errors: []
  };
}`

var benchPayload = []byte{0x0c, 0xe4, 0x09, 0xc4, 0x01, 0xf4, 0x01, 0x90, 0x00, 0x00, 0x01}

// BenchmarkScriptPooled decodes through a Script: a runtime from the pool per call.
func BenchmarkScriptPooled(b *testing.B) {
	s := mustScript(b, benchScript)
	in := &Input{Bytes: benchPayload, FPort: 2, RecvTime: recv, Device: "bench"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		out, err := s.Decode(ctx, in)
		if err != nil || len(out.Readings) != 4 {
			b.Fatalf("decode: %v, %v", out, err)
		}
	}
}

// BenchmarkScriptPooledParallel is BenchmarkScriptPooled from GOMAXPROCS goroutines.
func BenchmarkScriptPooledParallel(b *testing.B) {
	cfg := DefaultConfig()
	s, err := NewScript("bench", "bench.js", []byte(benchScript), cfg, ScriptOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		in := &Input{Bytes: benchPayload, FPort: 2, RecvTime: recv, Device: "bench"}
		for pb.Next() {
			if _, err := s.Decode(context.Background(), in); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkScriptFreshRuntime is the baseline the pool exists to beat: the script compiled
// once, but a new sandboxed runtime per call (goja.New, console, the prelude's guards, the
// script's top level, entry detection), then the same decode as BenchmarkScriptPooled.
func BenchmarkScriptFreshRuntime(b *testing.B) {
	cfg := testConfig()
	cfg.Timeout = time.Second // a loaded machine must not turn set-up time into timeouts
	s, err := NewScript("bench", "bench.js", []byte(benchScript), cfg, ScriptOptions{})
	if err != nil {
		b.Fatal(err)
	}
	p := s.cur.Load()
	in := &Input{Bytes: benchPayload, FPort: 2, RecvTime: recv, Device: "bench"}
	b.ReportAllocs()
	for b.Loop() {
		v, err := newVM(p)
		if err != nil {
			b.Fatal(err)
		}
		out, err := v.decode(in)
		if err != nil || len(out.Readings) != 4 {
			b.Fatalf("decode: %v, %v", out, err)
		}
	}
}

// BenchmarkScriptFreshBareRuntime is the cheapest possible fresh runtime per call, for
// comparison: goja.New, run the script, call decodeUplink, export; no sandbox at all (no
// timeout, no guards, no console), which Sluice never runs user code without.
func BenchmarkScriptFreshBareRuntime(b *testing.B) {
	prg := goja.MustCompile("bench.js", benchScript, false)
	b.ReportAllocs()
	for b.Loop() {
		rt := goja.New()
		if _, err := rt.RunProgram(prg); err != nil {
			b.Fatal(err)
		}
		fn, _ := goja.AssertFunction(rt.Get("decodeUplink"))
		items := make([]any, len(benchPayload))
		for i, c := range benchPayload {
			items[i] = int64(c)
		}
		in := rt.NewObject()
		_ = in.Set("bytes", rt.NewArray(items...))
		_ = in.Set("fPort", 2)
		res, err := fn(goja.Undefined(), in)
		if err != nil {
			b.Fatal(err)
		}
		data := res.ToObject(rt).Get("data").Export().(map[string]any)
		if len(Flatten(data, recv)) != 4 {
			b.Fatal("want 4 readings")
		}
	}
}

func BenchmarkJSON(b *testing.B) {
	in := &Input{Bytes: []byte(`{"battery":3.3,"temperature":25,"humidity":50.5,"co2":400}`), RecvTime: recv}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if out, err := (JSON{}).Decode(ctx, in); err != nil || len(out.Readings) != 4 {
			b.Fatal(err)
		}
	}
}

func BenchmarkCayenneLPP(b *testing.B) {
	// temperature, humidity, barometer and analog input: 4 fields, 15 bytes.
	in := &Input{Bytes: []byte{0x01, 0x67, 0x00, 0xff, 0x02, 0x68, 0x61, 0x03, 0x73, 0x27, 0x7f, 0x04, 0x02, 0x01, 0x4a}, RecvTime: recv}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if out, err := (CayenneLPP{}).Decode(ctx, in); err != nil || len(out.Readings) != 4 {
			b.Fatal(err, out)
		}
	}
}

// BenchmarkTemplate decodes with a shipped template (Milesight VS350, a channel-by-channel
// decoder with helper functions) through the pool and with a fresh sandboxed runtime per call.
func BenchmarkTemplate(b *testing.B) {
	var tpl *Template
	for _, t := range loadTemplates(b) {
		if t.ID == "milesight/vs350" {
			tpl = t
		}
	}
	cfg := DefaultConfig()
	cfg.Timeout = time.Second // a loaded machine must not turn set-up time into timeouts
	s, err := tpl.Compile(cfg, ScriptOptions{})
	if err != nil {
		b.Fatal(err)
	}
	in := &Input{Bytes: []byte{0x01, 0x75, 0x64, 0x03, 0x67, 0x0c, 0x01, 0x04, 0xcc, 0x12, 0x00, 0x16, 0x00}, FPort: 85, RecvTime: recv}
	b.Run("pooled", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if out, err := s.Decode(context.Background(), in); err != nil || len(out.Readings) != 4 {
				b.Fatal(err)
			}
		}
	})
	b.Run("fresh", func(b *testing.B) {
		p := s.cur.Load()
		b.ReportAllocs()
		for b.Loop() {
			v, err := newVM(p)
			if err != nil {
				b.Fatal(err)
			}
			if out, err := v.decode(in); err != nil || len(out.Readings) != 4 {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkScriptCallGuard is what guarding one script call costs, with nothing to run: lock
// the goroutine to its thread, name and read the thread's CPU clock, arm and disarm the
// watchdog, recover.
func BenchmarkScriptCallGuard(b *testing.B) {
	s := mustScript(b, benchScript)
	v, err := s.cur.Load().pool.get(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	nothing := func() (goja.Value, error) { return nil, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.call(nothing); err != nil {
			b.Fatal(err)
		}
	}
}
