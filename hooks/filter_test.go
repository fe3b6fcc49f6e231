package hooks

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/internal/metrictest"
	"github.com/sluice-iot/sluice/internal/socseries"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func scriptedConfig() FilterConfig {
	cfg := DefaultFilterConfig()
	cfg.Metrics = map[string]Deadband{"temperature": {Absolute: 0.5, Heartbeat: 15 * time.Minute}}
	return cfg
}

func newTestFilter(t testing.TB, cfg FilterConfig) (*Filter, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	f, err := NewFilter(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	return f, reg
}

func uplink(device string, at time.Time, readings ...sluice.Reading) *sluice.Uplink {
	for i := range readings {
		readings[i].Time = at
	}
	return &sluice.Uplink{Tenant: "default", Device: device, Decoder: "json", Readings: readings}
}

// feed applies and commits one uplink, as ingest does after a successful store, and returns
// the kept and suppressed metrics.
func feed(f *Filter, u *sluice.Uplink) (kept, supp []string) {
	f.Apply(u)
	f.Commit(u)
	for _, r := range u.Readings {
		kept = append(kept, r.Metric)
	}
	for _, r := range u.Suppressed {
		supp = append(supp, r.Metric)
	}
	return kept, supp
}

func TestFilterScriptedSeries(t *testing.T) {
	f, reg := newTestFilter(t, scriptedConfig())
	var got []int
	for i := range 1000 {
		u := uplink("dev-1", socseries.At(i), sluice.Reading{Metric: "temperature", Value: socseries.Value(i)})
		if kept, _ := feed(f, u); len(kept) == 1 {
			got = append(got, i)
		} else if len(u.Suppressed) != 1 || u.Suppressed[0].Value != socseries.Value(i) {
			t.Fatalf("reading %d: neither kept nor listed as suppressed: %+v", i, u)
		}
	}
	changed, heartbeat := socseries.Kept(1000)
	want := slices.Concat(changed, heartbeat)
	if !slices.Equal(got, want) {
		t.Fatalf("kept readings:\n got %v\nwant %v", got, want)
	}
	for result, n := range map[string]int{"changed": len(changed) - 1, "first": 1, "heartbeat": len(heartbeat), "suppressed": 1000 - len(want)} {
		if c := metrictest.Value(t, reg, "sluice_filter_readings_total", "result", result); c != float64(n) {
			t.Errorf("sluice_filter_readings_total{result=%q}: got %v, want %d", result, c, n)
		}
	}
	if len(want) != 84 {
		t.Fatalf("the script keeps %d readings, want 84 (the end-to-end tests rely on it)", len(want))
	}
}

func TestFilterRules(t *testing.T) {
	hb := time.Hour
	cfg := DefaultFilterConfig()
	cfg.Default = &Deadband{Absolute: 100, Heartbeat: hb}
	cfg.Metrics = map[string]Deadband{"temp*": {Absolute: 10, Heartbeat: hb}, "temperature": {Absolute: 1, Heartbeat: hb}, "raw": {Off: true}}
	cfg.Templates = map[string]map[string]Deadband{"acme/th": {"temperature": {Absolute: 0.1, Heartbeat: hb}}}
	cfg.Devices = []DeviceDeadbands{
		{Device: "exact-*", Metrics: map[string]Deadband{"*": {Absolute: 0.001, Heartbeat: hb}}},
		{Tenant: "other", Device: "*", Metrics: map[string]Deadband{"temperature": {Off: true}}},
	}
	tests := []struct {
		name, tenant, device, decoder, metric string
		step                                  float64 // smallest change that is kept
	}{
		{"global default", "default", "d", "json", "pressure", 100},
		{"global pattern", "default", "d", "json", "temp_out", 10},
		{"exact name beats pattern", "default", "d", "json", "temperature", 1},
		{"template beats global", "default", "d", "acme/th", "temperature", 0.1},
		{"template falls back to global", "default", "d", "acme/th", "temp_out", 10},
		{"device beats template", "default", "exact-1", "acme/th", "temperature", 0.001},
		{"device entry for another tenant", "other", "d", "json", "temperature", 0},
		{"off", "default", "d", "json", "raw", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := newTestFilter(t, cfg)
			u := func(v float64, min int) *sluice.Uplink {
				return &sluice.Uplink{Tenant: tt.tenant, Device: tt.device, Decoder: tt.decoder,
					Readings: []sluice.Reading{{Metric: tt.metric, Value: v, Time: t0.Add(time.Duration(min) * time.Minute)}}}
			}
			feed(f, u(1000, 0))
			if tt.step == 0 {
				if kept, _ := feed(f, u(1000, 1)); len(kept) != 1 {
					t.Fatalf("an unchanged value was suppressed on an unfiltered series")
				}
				return
			}
			if kept, _ := feed(f, u(1000+tt.step*0.99, 1)); len(kept) != 0 {
				t.Errorf("a change of 0.99×%v was kept", tt.step)
			}
			if kept, _ := feed(f, u(1000+tt.step*1.01, 2)); len(kept) != 1 {
				t.Errorf("a change of 1.01×%v was suppressed", tt.step)
			}
		})
	}
}

func TestFilterRelativeDeadband(t *testing.T) {
	cfg := DefaultFilterConfig()
	cfg.Default = &Deadband{Relative: 0.01, Absolute: 0.5, Heartbeat: time.Hour}
	f, _ := newTestFilter(t, cfg)
	steps := []struct {
		v    float64
		kept bool
	}{
		{1000, true},   // first
		{1009, false},  // 0.9 %
		{1010.5, true}, // 1.05 % of the last kept value
		{1011, false},
		{0, true},
		{0.4, false}, // near zero the absolute deadband still applies
		{0.6, true},
	}
	for i, s := range steps {
		kept, _ := feed(f, uplink("d", t0.Add(time.Duration(i)*time.Second), sluice.Reading{Metric: "power", Value: s.v}))
		if (len(kept) == 1) != s.kept {
			t.Errorf("step %d (%v): kept %v, want %v", i, s.v, len(kept) == 1, s.kept)
		}
	}
}

func TestFilterDiscreteValues(t *testing.T) {
	cfg := DefaultFilterConfig()
	cfg.Default = &Deadband{Absolute: 5, Heartbeat: time.Hour}
	cfg.Metrics = map[string]Deadband{"mode": {Absolute: 5, Heartbeat: time.Hour, Discrete: true}}
	f, _ := newTestFilter(t, cfg)
	for i, v := range []bool{false, true, true, false} {
		u := uplink("d", t0.Add(time.Duration(i)*time.Second), sluice.Reading{Metric: "door.open", Value: b2f(v)}, sluice.Reading{Metric: "mode", Value: float64(i / 2)})
		u.Data = map[string]any{"door": map[string]any{"open": v}, "mode": float64(i / 2)}
		kept, _ := feed(f, u)
		want := map[int][]string{0: {"door.open", "mode"}, 1: {"door.open"}, 2: {"mode"}, 3: {"door.open"}}[i]
		if !slices.Equal(kept, want) {
			t.Errorf("step %d: kept %v, want %v", i, kept, want)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// An uplink that was filtered but never stored (Apply without Commit) changes nothing: its
// resend is judged against the same last kept value.
func TestFilterUncommittedIsForgotten(t *testing.T) {
	f, _ := newTestFilter(t, scriptedConfig())
	r := sluice.Reading{Metric: "temperature", Value: 20}
	feed(f, uplink("d", t0, r))
	r.Value = 25
	u := uplink("d", t0.Add(time.Minute), r)
	f.Apply(u) // not stored: the buffer refused it
	if len(u.Readings) != 1 {
		t.Fatal("change not kept")
	}
	if kept, _ := feed(f, uplink("d", t0.Add(time.Minute), r)); len(kept) != 1 {
		t.Fatal("the resend of an uplink that was not stored was suppressed")
	}
}

func TestFilterHeartbeatSurvivesClockJumps(t *testing.T) {
	f, _ := newTestFilter(t, scriptedConfig())
	r := sluice.Reading{Metric: "temperature", Value: 20}
	steps := []struct {
		at   time.Time
		kept bool
	}{
		{t0, true},
		{t0.Add(14 * time.Minute), false},
		{t0.AddDate(10, 0, 0), true},     // a bogus future time is kept (heartbeat passed)…
		{t0.Add(15 * time.Minute), true}, // …and does not hold back the next heartbeat
		{t0.Add(16 * time.Minute), false},
		{t0.Add(29 * time.Minute), false},
		{t0.Add(30 * time.Minute), true},
	}
	for i, s := range steps {
		if kept, _ := feed(f, uplink("d", s.at, r)); (len(kept) == 1) != s.kept {
			t.Errorf("step %d at %v: kept %v, want %v", i, s.at, len(kept) == 1, s.kept)
		}
	}
}

func TestFilterEvictsLeastRecentlyUsed(t *testing.T) {
	cfg := scriptedConfig()
	cfg.Metrics = map[string]Deadband{"*": {Absolute: 1, Heartbeat: time.Hour}}
	cfg.MaxSeries = 64
	f, reg := newTestFilter(t, cfg)
	const devices = 640
	for round := range 2 {
		for d := range devices {
			feed(f, uplink(fmt.Sprint("d", d), t0.Add(time.Duration(round)*time.Second), sluice.Reading{Metric: "m", Value: 1}))
		}
	}
	if n := f.series.len(); n > cfg.MaxSeries {
		t.Fatalf("tracked %d series, more than max_series %d", n, cfg.MaxSeries)
	}
	ev := metrictest.Value(t, reg, "sluice_filter_evictions_total", "", "")
	if want := float64(2*devices - f.series.len()); ev != want {
		t.Fatalf("evictions: got %v, want %v", ev, want)
	}
	// The most recent devices are still known: their unchanged value is suppressed.
	kept, _ := feed(f, uplink(fmt.Sprint("d", devices-1), t0.Add(2*time.Second), sluice.Reading{Metric: "m", Value: 1}))
	if len(kept) != 0 {
		t.Fatal("the most recently used series was evicted")
	}
}

func TestFilterConfigValidate(t *testing.T) {
	cfg := FilterConfig{
		Default:   &Deadband{Absolute: -1},
		Metrics:   map[string]Deadband{"[": {Heartbeat: time.Hour}, "x": {Off: true, Absolute: 1}},
		Templates: map[string]map[string]Deadband{"acme/th": {"t": {Relative: 2, Heartbeat: time.Hour}}},
		Devices:   []DeviceDeadbands{{Tenant: "a"}},
	}
	err := cfg.Validate()
	want := []string{
		"max_series: must be positive",
		"snapshot_interval: must be positive",
		"default.absolute: -1 must be a finite number ≥ 0",
		"default.heartbeat: required and positive",
		`metrics: bad pattern "["`,
		"metrics.x: off excludes absolute, relative, distance, heartbeat and discrete",
		"templates.acme/th.t.relative: 2 must be a fraction from 0 to below 1",
		`devices[0].device: required (a name or a pattern such as "*")`,
		`devices[0].metrics: required (use "*" for every metric)`,
	}
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", n, len(want), err)
	}
}

// Kept and suppressed readings keep their order, however many there are.
func TestFilterKeepsOrder(t *testing.T) {
	cfg := DefaultFilterConfig()
	cfg.Default = &Deadband{Absolute: 1, Heartbeat: time.Hour}
	f, _ := newTestFilter(t, cfg)
	const n = 20
	first := make([]sluice.Reading, n)
	for i := range first {
		first[i] = sluice.Reading{Metric: fmt.Sprintf("m%02d", i), Value: 0}
	}
	feed(f, uplink("d", t0, first...))
	next := make([]sluice.Reading, n)
	var wantKept, wantSupp []string
	for i := range next {
		next[i] = sluice.Reading{Metric: fmt.Sprintf("m%02d", i), Value: float64(i % 3)} // 0 and 1 inside, 2 outside
		if i%3 == 2 {
			wantKept = append(wantKept, next[i].Metric)
		} else {
			wantSupp = append(wantSupp, next[i].Metric)
		}
	}
	kept, supp := feed(f, uplink("d", t0.Add(time.Second), next...))
	if !slices.Equal(kept, wantKept) || !slices.Equal(supp, wantSupp) {
		t.Fatalf("kept %v, suppressed %v; want %v and %v", kept, supp, wantKept, wantSupp)
	}
}
