package sink_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/internal/tcpproxy"
	"github.com/sluice-iot/sluice/sink"
)

// A target with start: new, made on an empty buffer, that stops while it holds delivered but
// uncommitted uplinks (its database was cut; a kill -9 leaves the same consumer state) gets
// them again when it starts anew: its consumer's acknowledgement floor is 0, and starting it
// over "from new" would skip every one of them.
func TestRestartAtAckFloorZeroKeepsUncommitted(t *testing.T) {
	buf := openBuffer(t, nil)
	u, err := url.Parse(pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := tcpproxy.Start(t, u.Host)
	u.Host = proxy.Addr
	cfg := targetConfig(t, "fresh_new")
	cfg.DatabaseURL = u.String()
	cfg.Start = sink.StartNew
	tg := startTarget(t, buf, cfg, nil)
	mqtttest.WaitFor(t, 30*time.Second, "the target to consume", func() bool {
		return tg.Report(context.Background()).State == sink.StateOK
	})
	proxy.Cut()
	at := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	const n = 20
	for i := range n {
		publish(t, buf, uplink(fmt.Sprintf("f%03d", i), "dev", at.Add(time.Duration(i)*time.Second), float64(i)))
	}
	mqtttest.WaitFor(t, 30*time.Second, "the uplinks to be delivered and held uncommitted", func() bool {
		c, err := buf.JetStream().Consumer(context.Background(), buf.Stream(), "sink-"+cfg.Name)
		return err == nil && c.CachedInfo().NumAckPending == n && c.CachedInfo().AckFloor.Stream == 0
	})
	tg.stop()
	proxy.Restore()

	startTarget(t, buf, cfg, nil)
	got := waitCountAfterMarker(t, buf, cfg.Schema, at)
	if got != n {
		t.Fatalf("after the restart: got %d readings, want %d (published and held uncommitted)", got, n)
	}
}

// A consumer made by an earlier version with another acknowledgement policy is deleted and made
// anew; when a process was killed holding its first messages (floor 0), the new consumer starts
// at the first sequence, not by its original deliver policy ("new" would skip them).
func TestConsumerOfOtherAckPolicyRemadeFromFloor(t *testing.T) {
	buf := openBuffer(t, nil)
	cfg := targetConfig(t, "old_policy")
	cfg.Start = sink.StartNew
	ctx := context.Background()
	old, err := buf.JetStream().CreateOrUpdateConsumer(ctx, buf.Stream(), jetstream.ConsumerConfig{
		Durable: "sink-" + cfg.Name, FilterSubject: sluice.UplinkPrefix + ">",
		AckPolicy: jetstream.AckAllPolicy, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	const n = 10
	for i := range n {
		publish(t, buf, uplink(fmt.Sprintf("o%03d", i), "dev", at.Add(time.Duration(i)*time.Second), float64(i)))
	}
	// A process fetches them and dies before acknowledging any.
	batch, err := old.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for range batch.Messages() {
		got++
	}
	if got != n {
		t.Fatalf("fetched %d, want %d", got, n)
	}

	startTarget(t, buf, cfg, nil)
	if c := waitCountAfterMarker(t, buf, cfg.Schema, at); c != n {
		t.Fatalf("got %d readings, want %d", c, n)
	}
	c, err := buf.JetStream().Consumer(ctx, buf.Stream(), "sink-"+cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	if p := c.CachedInfo().Config.AckPolicy; p != jetstream.AckExplicitPolicy {
		t.Fatalf("consumer ack policy %v, want explicit", p)
	}
}

// waitCountAfterMarker publishes a marker uplink (device "marker") after everything else,
// waits until the target has written it, and returns the readings of the other devices: the
// target writes in the order of the buffer, so whatever it would write of what came before
// is written by then.
func waitCountAfterMarker(t *testing.T, buf *sink.Buffer, schema string, at time.Time) int64 {
	t.Helper()
	publish(t, buf, uplink("marker", "marker", at.Add(-time.Hour), 1))
	if n := waitCount(t, schema, "SELECT count(*) FROM readings WHERE device = 'marker'", 1, 30*time.Second); n != 1 {
		t.Fatalf("the marker was not written within 30s")
	}
	return pgtest.Count(t, schema, "SELECT count(*) FROM readings WHERE device <> 'marker'")
}
