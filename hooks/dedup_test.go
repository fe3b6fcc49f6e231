package hooks

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-iot/sluice/internal/metrictest"
)

func newTestDedup(t *testing.T, window time.Duration, max int) (*Dedup, *time.Time) {
	t.Helper()
	d, err := NewDedup(DedupConfig{Window: window, MaxEntries: max}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d.now = func() time.Time { return now }
	return d, &now
}

func TestDedupWindow(t *testing.T) {
	d, now := newTestDedup(t, time.Minute, 100)
	p := []byte{1, 2}
	if _, dup := d.Claim("a", 7, 1, p); dup {
		t.Fatal("first copy taken for a duplicate")
	}
	*now = now.Add(59 * time.Second)
	if _, dup := d.Claim("a", 7, 1, p); !dup {
		t.Fatal("copy within the window not detected")
	}
	for _, c := range []struct {
		device string
		fcnt   uint32
		port   int
		p      []byte
	}{{"b", 7, 1, p}, {"a", 8, 1, p}, {"a", 7, 2, p}, {"a", 7, 1, []byte{3}}} {
		if _, dup := d.Claim(c.device, c.fcnt, c.port, c.p); dup {
			t.Errorf("%+v taken for a duplicate of (a, 7, 1, 0102)", c)
		}
	}
	*now = now.Add(time.Second)
	if _, dup := d.Claim("a", 7, 1, p); dup {
		t.Error("copy after the window taken for a duplicate")
	}
	if got := metrictest.Counter(t, d.duplicates); got != 1 {
		t.Errorf("sluice_lorawan_duplicates_total: got %v, want 1", got)
	}
}

func TestDedupBoundedAndReset(t *testing.T) {
	d, _ := newTestDedup(t, time.Hour, 3)
	for i := range uint32(5) {
		d.Claim("a", i, 1, nil)
	}
	if d.Len() != 3 {
		t.Fatalf("entries: got %d, want the bound 3", d.Len())
	}
	if got := metrictest.Counter(t, d.evicted); got != 2 {
		t.Errorf("sluice_lorawan_dedup_evicted_total: got %v, want 2", got)
	}
	if _, dup := d.Claim("a", 0, 1, nil); dup {
		t.Error("an evicted uplink is still remembered")
	}
	d.Claim("b", 9, 1, nil)
	d.Reset("a")
	if d.Len() != 1 {
		t.Errorf("after Reset(a): %d entries, want 1 (b's)", d.Len())
	}
	c, dup := d.Claim("c", 1, 1, nil)
	if dup {
		t.Fatal("unexpected duplicate")
	}
	c.Release()
	if _, dup := d.Claim("c", 1, 1, nil); dup {
		t.Error("a released claim is still remembered")
	}
}

func TestDedupDisabledAndValidate(t *testing.T) {
	if d, err := NewDedup(DedupConfig{Window: 0, MaxEntries: 1}, prometheus.NewRegistry()); d != nil || err != nil {
		t.Errorf("window 0: got %v, %v; want no window", d, err)
	}
	err := DedupConfig{Window: -time.Second, MaxEntries: 0}.Validate()
	want := "window: must be between 0 and 24h\nmax_entries: must be between 1 and 10000000"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}
