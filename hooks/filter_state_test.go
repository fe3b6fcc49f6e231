package hooks

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/internal/metrictest"
	"github.com/sluice-iot/sluice/internal/socseries"
)

// runScript feeds readings from..to-1 of the scripted series and returns the kept indexes.
func runScript(f *Filter, from, to int) []int {
	var kept []int
	for i := from; i < to; i++ {
		u := uplink("dev-1", socseries.At(i), sluice.Reading{Metric: "temperature", Value: socseries.Value(i)})
		if k, _ := feed(f, u); len(k) == 1 {
			kept = append(kept, i)
		}
	}
	return kept
}

// A filter saved in the middle of the series and loaded by a new one continues exactly where
// the first stopped: no reading kept twice, no heartbeat missed.
func TestStateSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), StateFile)
	f1, _ := newTestFilter(t, scriptedConfig())
	got := runScript(f1, 0, 600)
	if err := f1.SaveState(path); err != nil {
		t.Fatal(err)
	}
	f2, reg := newTestFilter(t, scriptedConfig())
	savedAt, n, err := f2.LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || time.Since(savedAt) > time.Minute {
		t.Fatalf("loaded %d series saved at %v, want 1 saved just now", n, savedAt)
	}
	got = append(got, runScript(f2, 600, 1000)...)
	changed, heartbeat := socseries.Kept(1000)
	if want := slices.Concat(changed, heartbeat); !slices.Equal(got, want) {
		t.Fatalf("kept readings across the restart:\n got %v\nwant %v", got, want)
	}
	if v := metrictest.Value(t, reg, "sluice_filter_readings_total", "result", "first"); v != 0 {
		t.Fatalf("after loading the state %v readings were kept as first of their series", v)
	}
}

func TestStateSkipsUnchangedAndRejectsDamage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, StateFile)
	f, reg := newTestFilter(t, scriptedConfig())
	runScript(f, 0, 10)
	for range 3 {
		if err := f.SaveState(path); err != nil {
			t.Fatal(err)
		}
	}
	if v := metrictest.Value(t, reg, "sluice_filter_snapshots_total", "result", "ok"); v != 1 {
		t.Fatalf("sluice_filter_snapshots_total{result=ok}: got %v, want 1 (nothing changed after the first)", v)
	}
	raw, _ := os.ReadFile(path)
	raw[len(raw)-6] ^= 0xff
	os.WriteFile(path, raw, 0o600)
	g, _ := newTestFilter(t, scriptedConfig())
	if _, _, err := g.LoadState(path); !errors.Is(err, ErrStateCorrupt) {
		t.Fatalf("damaged snapshot: got %v, want ErrStateCorrupt", err)
	}
	if _, n, err := g.LoadState(filepath.Join(dir, "missing")); err != nil || n != 0 {
		t.Fatalf("missing snapshot: got %d series, %v; want none and no error", n, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("data dir holds %d files, want only the snapshot (no temporary files left)", len(entries))
	}
}

// A damaged or hostile snapshot never panics and never loads half: either every series or
// none.
func FuzzLoadState(f *testing.F) {
	dir := f.TempDir()
	good := filepath.Join(dir, "seed")
	src, _ := newTestFilter(f, scriptedConfig())
	runScript(src, 0, 20)
	feed(src, uplink("dev-2", t0, sluice.Reading{Metric: "temperature", Value: 3}))
	if err := src.SaveState(good); err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(good)
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add([]byte("SLSOC\x00\x00\x01"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		path := filepath.Join(t.TempDir(), StateFile)
		os.WriteFile(path, raw, 0o600)
		g, _ := newTestFilter(t, scriptedConfig())
		_, n, err := g.LoadState(path)
		if tracked := g.series.len(); err != nil && tracked != 0 || err == nil && tracked > n {
			t.Fatalf("loaded %d series (reported %d) with error %v", tracked, n, err)
		}
	})
}
