package hooks

import (
	"math"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sluice-iot/sluice"
)

// Texts and booleans are kept on change, positions when they moved more than the distance
// deadband; the heartbeat keeps each of them now and then.
func TestFilterTypedValues(t *testing.T) {
	cfg := DefaultFilterConfig()
	cfg.Default = &Deadband{Absolute: 5, Distance: 25, Heartbeat: time.Hour}
	f, _ := newTestFilter(t, cfg)
	// 0.0002° of latitude is about 22 m, 0.0003° about 33 m.
	steps := []struct {
		status string
		door   bool
		lat    float64
		at     time.Duration
		want   []string
	}{
		{"Good", false, 52.0, 0, []string{"door", "pos", "status"}},
		{"Good", false, 52.0002, time.Minute, nil},
		{"Low", false, 52.0002, 2 * time.Minute, []string{"status"}},
		{"Low", true, 52.0003, 3 * time.Minute, []string{"door", "pos"}}, // 33 m from the last kept
		{"Low", true, 52.0004, 4 * time.Minute, nil},                     // 11 m
		{"Low", true, 52.0004, 61 * time.Minute, nil},
		{"Low", true, 52.0004, 63 * time.Minute, []string{"door", "pos", "status"}}, // heartbeat
	}
	for i, s := range steps {
		at := t0.Add(s.at)
		u := uplink("d", at, sluice.TextReading("status", s.status, at), sluice.BoolReading("door", s.door, at),
			sluice.LocationReading("pos", s.lat, 4.9, nil, at))
		kept, _ := feed(f, u)
		slices.Sort(kept)
		if !slices.Equal(kept, s.want) {
			t.Errorf("step %d: kept %v, want %v", i, kept, s.want)
		}
	}
}

// What the filter remembers of a text or a position survives a snapshot.
func TestFilterTypedStateSurvivesSnapshot(t *testing.T) {
	cfg := DefaultFilterConfig()
	cfg.Default = &Deadband{Distance: 100, Heartbeat: time.Hour}
	f, _ := newTestFilter(t, cfg)
	feed(f, uplink("d", t0, sluice.TextReading("fw", "1.2.3", t0), sluice.LocationReading("pos", -33.8688, 151.2093, nil, t0)))
	path := filepath.Join(t.TempDir(), "state")
	if err := f.SaveState(path); err != nil {
		t.Fatal(err)
	}
	g, _ := newTestFilter(t, cfg)
	if _, _, err := g.LoadState(path); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Minute)
	kept, supp := feed(g, uplink("d", at, sluice.TextReading("fw", "1.2.3", at), sluice.LocationReading("pos", -33.8689, 151.2093, nil, at)))
	if len(kept) != 0 || len(supp) != 2 {
		t.Errorf("after a reload: kept %v, suppressed %v; want both suppressed", kept, supp)
	}
}

func TestHaversine(t *testing.T) {
	// Amsterdam Centraal to the Dam: about 720 m; Paris to London: about 344 km.
	for _, c := range []struct{ lat1, lon1, lat2, lon2, want, tol float64 }{
		{52.3791, 4.9003, 52.3731, 4.8926, 830, 20},
		{48.8566, 2.3522, 51.5074, -0.1278, 343_500, 1_000},
		{10, 20, 10, 20, 0, 0},
	} {
		if got := haversine(c.lat1, c.lon1, c.lat2, c.lon2); math.Abs(got-c.want) > c.tol {
			t.Errorf("haversine(%v, %v, %v, %v) = %.0f m, want %.0f ± %.0f", c.lat1, c.lon1, c.lat2, c.lon2, got, c.want, c.tol)
		}
		if got := distance(packLocation(c.lat1, c.lon1), packLocation(c.lat2, c.lon2)); math.Abs(got-c.want) > c.tol+0.1 {
			t.Errorf("distance of packed locations = %.0f m, want %.0f", got, c.want)
		}
	}
}
