package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sluice-iot/sluice/sink"
)

// progress shows a replay's progress: a bar redrawn in place on a terminal, a plain line every
// few seconds otherwise (logs, pipes).
type progress struct {
	w        io.Writer
	tty      bool
	start    float64 // fraction done when this run started
	started  bool
	last     time.Time
	drawn    bool
	interval time.Duration
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, interval: 5 * time.Second}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty, p.interval = true, 200*time.Millisecond
		}
	}
	return p
}

func (p *progress) update(r sink.ReplayProgress) {
	if !p.started {
		p.started, p.start = true, r.Fraction
		if r.Resumed {
			fmt.Fprintf(p.w, "resuming a stopped replay at %.1f%%\n", 100*r.Fraction)
		}
	}
	if !r.Done && time.Since(p.last) < p.interval {
		return
	}
	p.last = time.Now()
	eta := "-"
	if d := r.ETA(p.start); d > 0 {
		eta = d.Round(time.Second).String()
	}
	if !p.tty {
		fmt.Fprintf(p.w, "replay %5.1f%%  %d messages  %d new rows  %.0f msg/s  eta %s\n", 100*r.Fraction, r.Messages, r.Rows, r.Rate(), eta)
		return
	}
	const width = 30
	n := int(r.Fraction * width)
	fmt.Fprintf(p.w, "\r[%s%s] %5.1f%%  %d msgs  %d rows  %.0f msg/s  eta %-8s", strings.Repeat("=", n), strings.Repeat(" ", width-n),
		100*r.Fraction, r.Messages, r.Rows, r.Rate(), eta)
	p.drawn = true
}

func (p *progress) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
