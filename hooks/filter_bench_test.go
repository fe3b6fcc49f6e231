package hooks

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice"
)

func benchFilter(b *testing.B, maxSeries int) *Filter {
	cfg := DefaultFilterConfig()
	cfg.MaxSeries = maxSeries
	cfg.Metrics = map[string]Deadband{"temperature": {Absolute: 0.5, Heartbeat: 15 * time.Minute}, "*humidity": {Absolute: 1, Heartbeat: time.Hour}}
	cfg.Devices = []DeviceDeadbands{{Device: "lab-*", Metrics: map[string]Deadband{"*": {Off: true}}}}
	f, err := NewFilter(cfg, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// The cost of store-on-change per reading, as ingest pays it: Apply on every uplink, Commit
// once stored. Nine readings in ten of each series are inside the deadband (suppressed), the
// tenth outside it (kept); the series are visited in turn.
func BenchmarkFilterPerReading(b *testing.B) {
	for _, series := range []int{1, 10_000, 100_000} {
		b.Run(fmt.Sprintf("series=%d", series), func(b *testing.B) {
			f := benchFilter(b, 2*series) // room for all: no eviction in the steady state
			devices := make([]string, series)
			for i := range devices {
				devices[i] = fmt.Sprintf("dev-%08d", i)
			}
			readings := make([]sluice.Reading, 1)
			u := &sluice.Uplink{Tenant: "default", Decoder: "json", Readings: readings}
			for _, d := range devices { // every series known: the steady state
				f.Commit(&sluice.Uplink{Tenant: "default", Device: d, Readings: []sluice.Reading{{Metric: "temperature", Time: t0}}})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				u.Device = devices[i%series]
				u.Readings = readings[:1]
				k := i / series // the k-th reading of this series: 9 in 10 inside the deadband
				u.Readings[0] = sluice.Reading{Metric: "temperature", Value: float64(k/10%2) + 0.1*float64(k%2), Time: t0.Add(time.Duration(k) * time.Second)}
				u.Suppressed = nil // a new uplink each time, as in ingest
				f.Apply(u)
				f.Commit(u)
			}
		})
	}
}

// Memory per tracked series: the heap the state of 100,000 series holds.
func BenchmarkFilterMemoryPerSeries(b *testing.B) {
	const n = 100_000
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f := benchFilter(b, 2*n)
		for i := range n {
			u := &sluice.Uplink{Tenant: "default", Device: fmt.Sprintf("dev-%08d", i), Readings: []sluice.Reading{{Metric: "temperature", Value: 1, Time: t0}}}
			f.Apply(u)
			f.Commit(u)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if f.series.len() != n {
			b.Fatalf("tracked %d series, want %d", f.series.len(), n)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/series")
		runtime.KeepAlive(f)
	}
}

// The cost of a snapshot of 100,000 series (key "default\x00dev-00000000\x00temperature").
func BenchmarkFilterSaveState(b *testing.B) {
	const n = 100_000
	f := benchFilter(b, n)
	for i := range n {
		f.Commit(&sluice.Uplink{Tenant: "default", Device: fmt.Sprintf("dev-%08d", i), Readings: []sluice.Reading{{Metric: "temperature", Value: 1, Time: t0}}})
	}
	path := b.TempDir() + "/" + StateFile
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		f.commits.Add(1) // force a write
		if err := f.SaveState(path); err != nil {
			b.Fatal(err)
		}
	}
}

// The cost of the flood limits per publish: a connection bucket and a device bucket.
func BenchmarkLimiterAllow(b *testing.B) {
	cfg := DefaultLimitConfig()
	cfg.Device = Rate{Rate: 1e9, Burst: 1e9}
	cfg.Connection = Rate{Rate: 1e9, Burst: 1e9}
	l, err := NewLimiter(cfg, time.Now, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	devices := make([]string, 1000)
	for i := range devices {
		devices[i] = fmt.Sprintf("dev-%08d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if l.Allow("client-1", "default", devices[i%len(devices)]) != "" {
			b.Fatal("limited")
		}
	}
}
