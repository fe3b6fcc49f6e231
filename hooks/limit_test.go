package hooks

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice/internal/metrictest"
)

// clock is a time source the test moves by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestLimiter(t *testing.T, cfg LimitConfig) (*Limiter, *clock, *prometheus.Registry) {
	t.Helper()
	c := &clock{t: t0}
	reg := prometheus.NewRegistry()
	l, err := NewLimiter(cfg, c.now, zerolog.Nop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	return l, c, reg
}

// allowed counts how many of n publishes at the current time are allowed.
func allowed(l *Limiter, n int, client, device string) (ok int, reasons map[string]int) {
	reasons = map[string]int{}
	for range n {
		if r := l.Allow(client, "default", device); r == "" {
			ok++
		} else {
			reasons[r]++
		}
	}
	return ok, reasons
}

func TestLimiterDeviceBucket(t *testing.T) {
	cfg := DefaultLimitConfig()
	cfg.Device = Rate{Rate: 2, Burst: 5}
	l, c, _ := newTestLimiter(t, cfg)
	if ok, r := allowed(l, 10, "c1", "dev-1"); ok != 5 || r[LimitDevice] != 5 {
		t.Fatalf("burst: allowed %d (%v), want 5 then 5 limited by device", ok, r)
	}
	if ok, _ := allowed(l, 10, "c2", "dev-2"); ok != 5 {
		t.Fatalf("another device: allowed %d, want its own burst of 5", ok)
	}
	c.advance(1500 * time.Millisecond) // 3 tokens
	if ok, _ := allowed(l, 10, "c1", "dev-1"); ok != 3 {
		t.Fatalf("after 1.5 s at 2/s: allowed %d, want 3", ok)
	}
	c.advance(time.Hour) // refills to the burst, not beyond
	if ok, _ := allowed(l, 10, "c1", "dev-1"); ok != 5 {
		t.Fatalf("after an hour: allowed %d, want the burst of 5", ok)
	}
}

func TestLimiterConnectionBucket(t *testing.T) {
	cfg := DefaultLimitConfig()
	cfg.Connection = Rate{Rate: 1, Burst: 4}
	cfg.Device = Rate{Rate: 1, Burst: 3}
	l, _, _ := newTestLimiter(t, cfg)
	// A gateway publishing for many devices is bounded by its connection bucket.
	total := 0
	for d := range 3 {
		ok, _ := allowed(l, 2, "gw", "dev-"+string(rune('a'+d)))
		total += ok
	}
	if total != 4 {
		t.Fatalf("gateway: allowed %d, want the connection burst of 4", total)
	}
	// A device limited by its own bucket does not use up its connection's tokens.
	ok, r := allowed(l, 5, "c1", "dev-x")
	if ok != 3 || r[LimitDevice] != 2 {
		t.Fatalf("device: allowed %d (%v), want 3 then 2 limited by device", ok, r)
	}
	if ok, _ := allowed(l, 1, "c1", "dev-y"); ok != 1 {
		t.Fatalf("connection tokens were taken by publishes the device bucket refused")
	}
}

func TestLimiterOverrides(t *testing.T) {
	cfg := DefaultLimitConfig()
	cfg.Device = Rate{Rate: 100, Burst: 100}
	cfg.Overrides = []RateOverride{
		{Tenant: "default", Device: "flood-*", Rate: 0.001, Burst: 2},
		{Tenant: "vip", Rate: 0}, // unlimited
	}
	l, _, _ := newTestLimiter(t, cfg)
	if ok, _ := allowed(l, 10, "c", "flood-1"); ok != 2 {
		t.Errorf("override: allowed %d, want 2", ok)
	}
	if ok, _ := allowed(l, 150, "c", "normal"); ok != 100 {
		t.Errorf("global: allowed %d, want 100", ok)
	}
	n := 0
	for range 1000 {
		if l.Allow("c", "vip", "x") == "" {
			n++
		}
	}
	if n != 1000 {
		t.Errorf("unlimited tenant: allowed %d of 1000", n)
	}
}

func TestLimiterBoundedBuckets(t *testing.T) {
	cfg := DefaultLimitConfig()
	cfg.Device = Rate{Rate: 1, Burst: 1}
	cfg.MaxBuckets = 10
	l, _, reg := newTestLimiter(t, cfg)
	for d := range 25 {
		l.Allow("c", "default", string(rune('a'+d)))
	}
	if n := metrictest.Value(t, reg, "sluice_limit_buckets", "kind", LimitDevice); n != 10 {
		t.Errorf("sluice_limit_buckets{kind=device}: got %v, want 10", n)
	}
	if n := metrictest.Value(t, reg, "sluice_limit_evictions_total", "kind", LimitDevice); n != 15 {
		t.Errorf("sluice_limit_evictions_total{kind=device}: got %v, want 15", n)
	}
}

func TestLimitConfigValidate(t *testing.T) {
	cfg := LimitConfig{
		Device:    Rate{Rate: -1},
		Overrides: []RateOverride{{Rate: 1}, {Device: "[", Burst: -2}},
	}
	err := cfg.Validate()
	want := []string{
		"max_buckets: must be positive",
		"device.rate: -1 must be a finite number ≥ 0 (messages per second; 0 is unlimited)",
		"overrides[0]: set tenant, device or both",
		`overrides[1].device: bad pattern "["`,
		"overrides[1].burst: -2 must be ≥ 0",
	}
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}
