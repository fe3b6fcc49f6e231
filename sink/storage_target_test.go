package sink_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/sink"
)

// Through the whole sink (JetStream, batches, the writer): readings land in the table of the
// class their tenant or device is assigned to, and readings_latest holds each series' newest.
func TestTargetWritesClasses(t *testing.T) {
	buf := openBuffer(t, nil)
	cfg := targetConfig(t, "classes")
	cfg.Storage.Classes = append(cfg.Storage.Classes,
		sink.ClassConfig{Name: "free", ChunkInterval: sink.Period(24 * time.Hour), Retention: sink.Period(30 * 24 * time.Hour)},
		sink.ClassConfig{Name: "archive", ChunkInterval: sink.Period(7 * 24 * time.Hour)})
	cfg.Storage.Assign = []sink.AssignRule{{Tenant: "t2", Class: "free"}, {Tenant: "t1", Device: "vip", Class: "archive"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	startTarget(t, buf, cfg, nil)
	at := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	for i := range 30 {
		for _, dev := range []string{"plain", "vip"} {
			publish(t, buf, uplink(fmt.Sprintf("%s-%d", dev, i), dev, at.Add(time.Duration(i)*time.Second), float64(i)))
		}
		u := uplink(fmt.Sprintf("t2-%d", i), "plain", at.Add(time.Duration(i)*time.Second), float64(i))
		u.Tenant = "t2"
		publish(t, buf, u)
	}
	if n := waitCount(t, cfg.Schema, "SELECT count(*) FROM readings", 90, 20*time.Second); n != 90 {
		t.Fatalf("readings: %d, want 90", n)
	}
	for q, want := range map[string]int64{
		"SELECT count(*) FROM measurements_standard":                                               30,
		"SELECT count(*) FROM measurements_archive":                                                30,
		"SELECT count(*) FROM measurements_free":                                                   30,
		"SELECT count(*) FROM readings_latest":                                                     3,
		"SELECT count(*) FROM readings_latest WHERE value = 29":                                    3,
		"SELECT count(*) FROM series WHERE tenant = 't1' AND device = 'vip' AND class = 'archive'": 1,
		"SELECT sum(count) FROM readings_1d":                                                       90,
	} {
		if got := pgtest.Count(t, cfg.Schema, q); got != want {
			t.Errorf("%s = %d, want %d", q, got, want)
		}
	}
}
