package transfer

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// reader walks a source's range in (time, key) order, chunk by chunk, each chunk query also
// bounded by a window of time that adapts to hold about one chunk. Without the window a
// query for "the next n rows after this time" costs what lies after that time wherever the
// rows cannot come from an index in order — TimescaleDB decompresses and sorts every
// compressed chunk after it — so a copy would cost the square of its length; with it each
// query reads about one window. Not safe for concurrent use.
type reader struct {
	src   *Source
	r     Range
	n     int
	pos   position           // last row returned
	lower pgtype.Timestamptz // every row before it has been returned
	hi    pgtype.Timestamptz // end of the current window (!Valid: none open)
	width time.Duration
	first time.Time // the source's first and last time in the range when the copy started
	last  time.Time
	done  bool
}

const (
	minWindow = time.Millisecond
	// startWindow is the first window; it doubles while windows come back less than half full.
	startWindow = time.Hour
)

func newReader(src *Source, r Range, pos position, n int, first, last time.Time) *reader {
	rd := &reader{src: src, r: r, n: n, pos: pos, lower: lowerBound(r), width: startWindow, first: first, last: last}
	if pos.time.Valid {
		rd.lower = pos.time
	}
	return rd
}

// next returns the next chunk, nil at the end of the range.
func (rd *reader) next(ctx context.Context) ([]srcRow, error) {
	for !rd.done {
		if !rd.hi.Valid && !rd.open() {
			rd.hi = upperBound(rd.r) // the last window: to the end of the range
		}
		rows, err := rd.src.chunk(ctx, rd.r, rd.pos, rd.lower, rd.hi, rd.n)
		if err != nil {
			return nil, err
		}
		if len(rows) > 0 {
			last := rows[len(rows)-1]
			rd.pos = position{time: last.time, key: last.key}
		}
		if len(rows) == rd.n { // the window holds more: go on in it, and make the next one smaller
			rd.lower = rd.pos.time
			rd.width = max(rd.width/2, minWindow)
			return rows, nil
		}
		// The window is exhausted.
		if rd.final() {
			rd.done = true
		} else {
			rd.lower, rd.hi = rd.hi, pgtype.Timestamptz{}
			if len(rows) < rd.n/2 {
				rd.width *= 2
			}
		}
		if len(rows) > 0 {
			return rows, nil
		}
	}
	return nil, nil
}

// open opens the next window after lower; false when it would reach past the range's end or
// the source's last time (the last window is left unbounded, or bounded by the range).
func (rd *reader) open() bool {
	base := rd.first
	if rd.lower.Valid && rd.lower.InfinityModifier == pgtype.Finite {
		base = rd.lower.Time
	} else if rd.lower.InfinityModifier == pgtype.Infinity {
		return false
	}
	if base.IsZero() || rd.last.IsZero() {
		return false
	}
	end := base.Add(rd.width)
	if end.After(rd.last) || (!rd.r.Until.IsZero() && !end.Before(rd.r.Until)) {
		return false
	}
	rd.hi = pgtype.Timestamptz{Time: end, Valid: true}
	return true
}

// final reports whether the current window is the last one.
func (rd *reader) final() bool {
	end := upperBound(rd.r)
	if !rd.hi.Valid || !end.Valid {
		return !rd.hi.Valid
	}
	return !rd.hi.Time.Before(end.Time)
}
