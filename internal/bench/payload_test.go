package bench

import (
	"bufio"
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice/decoders"
)

// Each generated message decodes to exactly the readings the benchmark expects in the
// database, every value changes from one message to the next (store-on-change never hides
// load), and JSON messages carry their publish time as the reading time.
func TestPayloadsDecodeToTheirReadings(t *testing.T) {
	now := time.Date(2026, 11, 26, 13, 4, 5, 123456000, time.UTC)
	for _, tc := range []struct {
		kind string
		dec  decoders.Decoder
	}{
		{PayloadJSON, decoders.JSON{}},
		{PayloadLPP, decoders.CayenneLPP{}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			k, err := kindOf(tc.kind)
			if err != nil {
				t.Fatal(err)
			}
			prev := map[string]float64{}
			for seq := uint64(0); seq < 50; seq++ {
				out, err := tc.dec.Decode(context.Background(), &decoders.Input{
					Bytes: k.appendPayload(nil, 7, seq, now), RecvTime: now.Add(time.Second), Device: k.device(7)})
				if err != nil {
					t.Fatalf("message %d: %v", seq, err)
				}
				if len(out.Readings) != k.readings {
					t.Fatalf("message %d: %d readings, want %d: %+v", seq, len(out.Readings), k.readings, out.Readings)
				}
				probe := false
				for _, r := range out.Readings {
					if seq > 0 && r.Value == prev[r.Metric] {
						t.Errorf("message %d: %s repeats %v", seq, r.Metric, r.Value)
					}
					prev[r.Metric] = r.Value
					probe = probe || r.Metric == k.probeMetric
					if tc.kind == PayloadJSON && !r.Time.Equal(now) {
						t.Errorf("message %d: %s time %v, want the publish time %v", seq, r.Metric, r.Time, now)
					}
				}
				if !probe {
					t.Fatalf("message %d: no %s reading (the probe metric)", seq, k.probeMetric)
				}
			}
		})
	}
}

// A chirpstack message is a ChirpStack v4 up event carrying an 11-byte LHT65 frame on fPort 2,
// which the dragino/lht65 template decodes to the expected readings.
func TestChirpStackPayloadIsAnLHT65Frame(t *testing.T) {
	k, _ := kindOf(PayloadChirpStack)
	now := time.Date(2026, 11, 26, 13, 4, 5, 123456000, time.UTC)
	topic := k.topic(3)
	env, err := decoders.Unwrap(decoders.FormatChirpStack, topic, k.appendPayload(nil, 3, 42, now))
	if err != nil {
		t.Fatal(err)
	}
	if env.Kind != decoders.KindUp || env.DevEUI != k.device(3) || env.FPort == nil || *env.FPort != 2 ||
		env.FCnt == nil || *env.FCnt != 42 || len(env.Payload) != 11 || !env.Time.Equal(now) {
		t.Fatalf("unwrapped %s: %+v", topic, env)
	}
	set, err := decoders.Open(decoders.Config{TemplatesDir: "../../configs/templates", Timeout: time.Second,
		MaxScriptSize: 1 << 20, MaxOutputSize: 1 << 20, MaxCallStack: 1000, PoolSize: 1}, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	dec, ok := set.Lookup("dragino/lht65")
	if !ok {
		t.Fatalf("no dragino/lht65 template among %v", set.Names())
	}
	out, err := dec.Decode(context.Background(), &decoders.Input{Bytes: env.Payload, FPort: 2, RecvTime: now, Device: env.DevEUI})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Readings) != k.readings {
		t.Errorf("%d readings, want %d: %+v", len(out.Readings), k.readings, out.Readings)
	}
}

func TestRemainingLength(t *testing.T) {
	for _, n := range []int{0, 127, 128, 16383, 16384, 2097151, 2097152, 268435455} {
		b := appendLength(nil, n)
		got, err := readLength(bufio.NewReader(bytes.NewReader(b)))
		if err != nil || got != n {
			t.Errorf("%d: encoded % x, read back %d (%v)", n, b, got, err)
		}
	}
}

func TestParseLine(t *testing.T) {
	r := &Result{UplinksPerSecond: 1234.4, ReadingsPerSecond: 4937.6, PubackP50: 1.5, PubackP99: 9.25, E2EP99: 120, E2ESamples: 10,
		Procs: []ProcCost{{Name: "telegraf", CPU: 2, RSS: 40_000_000}, {Name: "mosquitto", CPU: 1, RSS: 24_000_000}},
		PGCPU: 0.5, Load1: 2.25, Drain: &Drain{RowsPerSecond: 150000}, Sent: 1000, TableRows: 4000}
	got, err := ParseLine(r.Line())
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{"uplinks_per_s": 1234, "readings_per_s": 4938, "puback_p50_ms": 1.5,
		"puback_p99_ms": 9.25, "e2e_p99_ms": 120, "rss_mb": 64, "telegraf_rss_mb": 40, "mosquitto_rss_mb": 24,
		"cpu_s_per_100k": 300, "pg_cpu_s_per_100k": 50, "stack_cpu_s_per_100k": 350, "load1": 2.25,
		"drain_rows_per_s": 150000, "sent": 1000, "rows": 4000} {
		if got[k] != want {
			t.Errorf("%s: got %v, want %v (line %q)", k, got[k], want, r.Line())
		}
	}
	r.PGNote = "the database is on db.example, not this machine"
	got, _ = ParseLine(r.Line())
	for _, k := range []string{"pg_cpu_s_per_100k", "stack_cpu_s_per_100k"} {
		if v, ok := got[k]; ok {
			t.Errorf("%s=%v on the line when PostgreSQL's CPU was not measured", k, v)
		}
	}
	if _, err := ParseLine("RESULT uplinks_per_s=x"); err == nil || err.Error() != `RESULT field uplinks_per_s: strconv.ParseFloat: parsing "x": invalid syntax` {
		t.Errorf("bad value: got %v", err)
	}
}

// The drain is measured from the first commit after the restore until the rows of every
// message acknowledged before the restore are in.
func TestDrainOf(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	m := outageMarks{cut: at(0), restored: at(10_000), ackedAtRestore: 1000}
	samples := []sample{{at(9_990), 400}, {at(10_050), 400}, {at(11_000), 400}, {at(11_500), 2_400}, {at(12_000), 4_400}}
	d := drainOf(m, samples, 0, 4, 1)
	if d.ResumeDelay != 1500*time.Millisecond {
		t.Errorf("resume delay: got %v, want 1.5s", d.ResumeDelay)
	}
	if d.Backlog != 3600 {
		t.Errorf("backlog: got %d, want 3600", d.Backlog)
	}
	// 4,000 rows committed since the restore, in the 0.5 s from the first commit to the end.
	if d.RowsPerSecond != 8000 {
		t.Errorf("rate: got %v, want 8000", d.RowsPerSecond)
	}
}
