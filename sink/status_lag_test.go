package sink_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/sink"
)

// TestStatusLagBeforeConsumerExists: a target whose database is down from start-up has no
// consumer yet, but the uplinks waiting for it are its lag, and the oldest is known.
func TestStatusLagBeforeConsumerExists(t *testing.T) {
	buf := openBuffer(t, nil)
	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	for i := range 5 {
		publish(t, buf, uplink(fmt.Sprintf("u%d", i), "dev-1", at.Add(time.Duration(i)*time.Second), 1, 2))
	}
	for _, c := range []struct {
		start string
		want  uint64
	}{{sink.StartAll, 5}, {sink.StartNew, 0}} {
		t.Run(c.start, func(t *testing.T) {
			cfg := targetConfig(t, "down_"+c.start)
			cfg.DatabaseURL = "postgres://sluice@127.0.0.1:1/sluice?connect_timeout=1" // nothing listens on port 1
			cfg.Start = c.start
			tg := startTarget(t, buf, cfg, nil)
			mqtttest.WaitFor(t, 10*time.Second, "the target to try its database", func() bool {
				return tg.Report(context.Background()).State != sink.StateOK
			})
			r := tg.Report(context.Background())
			if r.LagMessages != c.want {
				t.Errorf("lag: got %d messages, want %d", r.LagMessages, c.want)
			}
			if c.want > 0 && (r.Oldest == nil || r.LagBytes == 0) {
				t.Errorf("lag of %d messages with oldest %v and %d bytes, want both known", r.LagMessages, r.Oldest, r.LagBytes)
			}
		})
	}
}
