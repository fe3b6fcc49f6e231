package edge_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/internal/sitetest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// "sluice stopped" is the last line a stopping site logs: after the embedded NATS server has
// shut down, so that an operator who sees it knows the buffer's files are closed.
func TestStoppedIsLoggedLast(t *testing.T) {
	var logs syncBuffer
	log := zerolog.New(&logs).Level(zerolog.DebugLevel)
	site, err := edge.New(sitetest.Config(t), log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- site.Run(ctx) }()
	wait, cancelWait := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelWait()
	if _, err := site.MQTTAddrs(wait); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, `"message":"sluice stopped"`) {
		t.Errorf("last log line is %s, want sluice stopped", last)
	}
	exiting := strings.Index(logs.String(), "Server Exiting")
	stopped := strings.Index(logs.String(), `"message":"sluice stopped"`)
	if exiting < 0 || stopped < exiting {
		t.Errorf("sluice stopped (at %d) is not logged after the NATS server exited (at %d)", stopped, exiting)
	}
}
