package sink_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/sink"
)

// Concurrent waiting publishes are stored in groups; with fsync each group is made durable by
// one fsync, and every message is in the stream.
func TestGroupCommitStoresEveryPublish(t *testing.T) {
	for _, fsync := range []bool{false, true} {
		t.Run(fmt.Sprintf("fsync=%v", fsync), func(t *testing.T) {
			reg := prometheus.NewRegistry()
			cfg := sink.DefaultBufferConfig()
			cfg.Fsync = fsync
			dir := t.TempDir()
			b, err := sink.NewBuffer(cfg, dir, testLog(), reg)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Open(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer b.Close()

			const publishers, each = 40, 25
			var wg sync.WaitGroup
			errs := make(chan error, publishers*each)
			for p := range publishers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						id := fmt.Sprintf("p%d-%d", p, i)
						subject := sluice.UplinkSubject("acme", fmt.Sprintf("dev-%d", p))
						if err := b.Publish(context.Background(), subject, id, []byte(`{}`), true); err != nil {
							errs <- err
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("publish: %v", err)
			}
			s, err := b.JetStream().Stream(context.Background(), cfg.Stream)
			if err != nil {
				t.Fatal(err)
			}
			info, err := s.Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got, want := info.State.Msgs, uint64(publishers*each); got != want {
				t.Errorf("messages in the stream: got %d, want %d", got, want)
			}
			// Per-device subjects stay meaningful: one subject per publisher.
			if got := info.State.NumSubjects; got != publishers {
				t.Errorf("subjects: got %d, want %d", got, publishers)
			}
			groups := histogram(t, reg, "sluice_buffer_group_messages")
			if groups.GetSampleSum() != publishers*each {
				t.Errorf("messages in groups: got %v, want %d", groups.GetSampleSum(), publishers*each)
			}
			if groups.GetSampleCount() == 0 || groups.GetSampleCount() > publishers*each {
				t.Errorf("groups: got %d", groups.GetSampleCount())
			}
			syncs := histogram(t, reg, "sluice_buffer_fsync_seconds").GetSampleCount()
			if fsync && syncs != groups.GetSampleCount() {
				t.Errorf("fsyncs: got %d, want one per group (%d)", syncs, groups.GetSampleCount())
			}
			if !fsync && syncs != 0 {
				t.Errorf("fsyncs without nats.fsync: got %d, want 0", syncs)
			}
		})
	}
}

func histogram(t *testing.T, g prometheus.Gatherer, name string) *dto.Histogram {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

// A waiting publish after Close fails at once; it never hangs on a stopped committer.
func TestGroupCommitAfterClose(t *testing.T) {
	cfg := sink.DefaultBufferConfig()
	cfg.Fsync = true
	b, err := sink.NewBuffer(cfg, t.TempDir(), testLog(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.Close()
	err = b.Publish(context.Background(), sluice.UplinkSubject("acme", "d"), "x", []byte(`{}`), true)
	if err == nil || err.Error() != "publish to sluice.up.acme.d: nats: connection closed" {
		t.Errorf("got %v, want the publish refused with nats: connection closed", err)
	}
}
