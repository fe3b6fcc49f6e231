package edge

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// recorder notes what happens to parts, in order.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) note(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// part is a part that notes its start, the end of its run and its stop; it fails where
// told to.
func (r *recorder) part(name string, startErr, runErr, stopErr error) part {
	return part{
		name: name,
		start: func(context.Context) error {
			r.note("start " + name)
			return startErr
		},
		run: func(ctx context.Context) error {
			if runErr != nil {
				return runErr
			}
			<-ctx.Done()
			r.note("ran " + name)
			return nil
		},
		stop: func() error {
			r.note("stop " + name)
			return stopErr
		},
	}
}

// Parts start in order and stop in reverse, each run ending before its stop.
func TestPartsStopInReverse(t *testing.T) {
	var r recorder
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := runParts(ctx, zerolog.Nop(), time.Minute, []part{
		r.part("buffer", nil, nil, nil), r.part("sink", nil, nil, nil), r.part("broker", nil, nil, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"start buffer", "start sink", "start broker",
		"ran broker", "stop broker", "ran sink", "stop sink", "ran buffer", "stop buffer"}
	if !slices.Equal(r.events, want) {
		t.Errorf("got %q\nwant %q", r.events, want)
	}
}

// A part that fails while running stops the site; every part's error is returned.
func TestPartsReportEveryError(t *testing.T) {
	var r recorder
	errSink, errBroker := errors.New("sink failed"), errors.New("broker close failed")
	err := runParts(context.Background(), zerolog.Nop(), time.Minute, []part{
		r.part("buffer", nil, nil, nil), r.part("sink", nil, errSink, nil), r.part("broker", nil, nil, errBroker),
	})
	if !errors.Is(err, errSink) || !errors.Is(err, errBroker) {
		t.Fatalf("got %v, want both errors", err)
	}
	if got := r.events[len(r.events)-1]; got != "stop buffer" {
		t.Errorf("last: got %q, want stop buffer", got)
	}
}

// A start that fails stops the parts already started, in reverse, and starts no other.
func TestPartsStartFailureStopsStarted(t *testing.T) {
	var r recorder
	errListen := errors.New("http.address: in use")
	err := runParts(context.Background(), zerolog.Nop(), time.Minute, []part{
		r.part("buffer", nil, nil, nil), r.part("admin", errListen, nil, nil), r.part("broker", nil, nil, nil),
	})
	if !errors.Is(err, errListen) {
		t.Fatalf("got %v, want %v", err, errListen)
	}
	want := []string{"start buffer", "start admin", "ran buffer", "stop buffer"}
	if !slices.Equal(r.events, want) {
		t.Errorf("got %q\nwant %q", r.events, want)
	}
}
