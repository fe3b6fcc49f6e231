package sink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/sink"
)

func testLog() zerolog.Logger {
	if testing.Verbose() {
		return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	}
	return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.ErrorLevel)
}

// openBuffer opens an embedded buffer in a temporary directory, closed when t ends.
func openBuffer(t testing.TB, edit func(*sink.BufferConfig)) *sink.Buffer {
	t.Helper()
	cfg := sink.DefaultBufferConfig()
	if edit != nil {
		edit(&cfg)
	}
	b, err := sink.NewBuffer(cfg, t.TempDir(), testLog(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// targetConfig is a target writing to a fresh schema of the test database.
func targetConfig(t testing.TB, name string) sink.TargetConfig {
	cfg := sink.DefaultTargetConfig()
	cfg.Name = name
	cfg.DatabaseURL = pgtest.URL()
	cfg.Schema = pgtest.Schema(t)
	cfg.BatchWait = 20 * time.Millisecond
	cfg.RetryMax = 500 * time.Millisecond
	return cfg
}

// running is a target whose Run is going.
type running struct {
	*sink.Target
	stop func()
}

// startTarget runs a target until stop or the end of the test.
func startTarget(t testing.TB, buf *sink.Buffer, cfg sink.TargetConfig, reg prometheus.Registerer) *running {
	t.Helper()
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	tg, err := sink.NewTarget(cfg, buf, testLog(), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tg.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("target %s: %v", cfg.Name, err)
		}
		tg.Close()
	}
	t.Cleanup(stop)
	return &running{Target: tg, stop: stop}
}

// uplink returns an uplink of device with one reading per value, one second apart.
func uplink(id, device string, at time.Time, values ...float64) *sluice.Uplink {
	u := &sluice.Uplink{ID: id, Tenant: "t1", Device: device, ReceivedAt: at}
	for i, v := range values {
		u.Readings = append(u.Readings, sluice.Reading{Metric: fmt.Sprintf("m%d", i), Value: v, Time: at})
	}
	return u
}

func publish(t testing.TB, buf *sink.Buffer, u *sluice.Uplink) {
	t.Helper()
	data, err := sluice.EncodeUplink(u)
	if err != nil {
		t.Fatal(err)
	}
	if err := buf.Publish(context.Background(), sluice.UplinkSubject(u.Tenant, u.Device), u.ID, data, true); err != nil {
		t.Fatal(err)
	}
}

// deadLetters reads every dead letter of target stored in the buffer.
func deadLetters(t testing.TB, buf *sink.Buffer, target string) []sluice.DeadLetter {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := buf.JetStream().OrderedConsumer(ctx, buf.DLQStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{sluice.DLQSubject(target)},
	})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []sluice.DeadLetter
	for n := info.NumPending; n > 0; n-- {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("read dead letters: %v", err)
		}
		var dl sluice.DeadLetter
		if err := json.Unmarshal(m.Data(), &dl); err != nil {
			t.Fatalf("dead letter %s: %v", m.Data(), err)
		}
		out = append(out, dl)
	}
	return out
}

// waitCount polls a count in schema until it reaches want or timeout passes; it returns the
// last count.
func waitCount(t testing.TB, schema, query string, want int64, timeout time.Duration) int64 {
	t.Helper()
	conn := pgtest.Connect(t, schema)
	deadline := time.Now().Add(timeout)
	for {
		var n int64
		if err := conn.QueryRow(context.Background(), query).Scan(&n); err != nil && !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("%s: %v", query, err)
		}
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// instant returns the time now once the clock has moved past it: a message whose store was
// acknowledged before the call was stored at or before it, one published after, after it.
func instant() time.Time {
	at := time.Now()
	for !time.Now().After(at) {
		runtime.Gosched()
	}
	return at
}

func migrate(t testing.TB, cfg sink.TargetConfig) {
	t.Helper()
	if _, err := sink.MigrateTarget(context.Background(), cfg, false, testLog()); err != nil {
		t.Fatal(err)
	}
}
