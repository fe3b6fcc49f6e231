package sink_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-iot/sluice/internal/mqtttest"
)

// BenchmarkDrain measures how fast a target empties a backlog: 20,000 uplinks of 5 readings
// each are in the buffer (as after an outage), and a target new to it writes them all.
//
//	./scripts/test -run XXX -bench Drain -benchtime 3x ./sink/
func BenchmarkDrain(b *testing.B) {
	buf := openBuffer(b, nil)
	at := time.Now().UTC().Truncate(time.Second).Add(-24 * time.Hour)
	const uplinks, per = 20_000, 5
	for i := range uplinks {
		publish(b, buf, uplink(fmt.Sprintf("b%06d", i), fmt.Sprintf("dev-%d", i%100), at.Add(time.Duration(i)*time.Second), 1, 2, 3, 4, float64(i)))
	}
	var total time.Duration
	i := 0
	for b.Loop() {
		i++
		cfg := targetConfig(b, fmt.Sprintf("drain_%d", i))
		migrate(b, cfg)
		start := time.Now()
		tg := startTarget(b, buf, cfg, nil)
		mqtttest.WaitFor(b, 5*time.Minute, "the backlog to drain", func() bool {
			return tg.Report(context.Background()).RowsWritten == uplinks*per
		})
		total += time.Since(start)
		tg.stop()
	}
	b.ReportMetric(float64(i*uplinks*per)/total.Seconds(), "rows/s")
}
