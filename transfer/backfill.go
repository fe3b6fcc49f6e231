package transfer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/sink"
)

// BackfillConfig says what a backfill copies and how.
type BackfillConfig struct {
	Range
	// Chunk is the most rows read and written at once (one transaction each); memory holds
	// at most three chunks.
	Chunk int
	// Rate bounds the rows read per second (0: unbounded), to spare the source.
	Rate float64
	// Restart forgets a stored checkpoint (and the copy's rejects) and copies again.
	Restart bool
	// Progress, when set, is called before the first chunk, after every chunk and at the end.
	Progress func(Progress)
}

// tablesLock is the advisory lock key serialising the creation of the backfill tables and of
// checkpoints.
const tablesLock = 0x51_0C_E5_BA_CF

// DefaultChunk is the default rows per chunk.
const DefaultChunk = 20000

// Validate reports every problem at once.
func (c BackfillConfig) Validate() error {
	var errs []error
	if c.Chunk < 1 || c.Chunk > 1_000_000 {
		errs = append(errs, fmt.Errorf("chunk: %d is outside 1..1000000", c.Chunk))
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		errs = append(errs, errors.New("rate: must be a number of rows per second, 0 for no limit"))
	}
	if !c.Since.IsZero() && !c.Until.IsZero() && !c.Until.After(c.Since) {
		errs = append(errs, errors.New("until: must be after since"))
	}
	return errors.Join(errs...)
}

// Progress is where a backfill stands. Totals include earlier runs of the same copy.
type Progress struct {
	ID                  string
	Read, New, Rejected int64
	RunRows             int64     // rows read by this run
	Started             time.Time // when this run started
	Position            time.Time // time of the last row copied
	First, Last         time.Time // time span of the source's readings in the range
	Resumed, Done       bool
}

// Fraction is the part of the time span copied (readings are assumed evenly spread in time).
func (p Progress) Fraction() float64 {
	if p.Done {
		return 1
	}
	span := p.Last.Sub(p.First)
	if span <= 0 || p.Position.IsZero() {
		return 0
	}
	return math.Min(1, math.Max(0, float64(p.Position.Sub(p.First))/float64(span)))
}

// Rate is this run's rows read per second.
func (p Progress) Rate() float64 {
	s := time.Since(p.Started).Seconds()
	if s <= 0 {
		return 0
	}
	return float64(p.RunRows) / s
}

// ETA estimates the time left from this run's pace through the time span; 0 when unknown.
func (p Progress) ETA(startFraction float64) time.Duration {
	f := p.Fraction()
	if f <= startFraction || f >= 1 {
		return 0
	}
	el := time.Since(p.Started)
	return time.Duration(float64(el) * (1 - f) / (f - startFraction))
}

// Report is what a backfill did.
type Report struct {
	Progress
	AlreadyDone bool     // the copy had finished before; nothing was read
	Refreshed   []string // continuous aggregates refreshed over the copied range
	RefreshFrom time.Time
	RefreshTo   time.Time
}

// Backfill copies the readings of src in cfg's range into dst, in time order, chunk by chunk,
// each chunk and the checkpoint after it in one transaction of the destination; the rows the
// writer refuses, and the rows it cannot even be given (a NULL, an infinite time, an empty
// tenant or device), are recorded in sluice_backfill_rejects with their reason. Killed at any
// point, the same call resumes after the last committed chunk. On TimescaleDB it then
// refreshes the destination's continuous aggregates over the copied range. The destination
// must be migrated.
func Backfill(ctx context.Context, src *Source, dst *sink.Writer, cfg BackfillConfig) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	schema := dst.Config().Schema
	pool := dst.Pool()
	id := backfillID(src, cfg.Range)
	rep := Report{Progress: Progress{ID: id, Started: time.Now()}}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(tablesLock)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, createTables(schema))
		return err
	})
	if err != nil {
		return rep, fmt.Errorf("create the backfill tables: %w", err)
	}
	cp, err := readCheckpoint(ctx, pool, schema, id)
	if err != nil {
		return rep, err
	}
	if cp != nil && cfg.Restart {
		if err := forget(ctx, dst, id); err != nil {
			return rep, err
		}
		cp = nil
	}
	missed, err := src.typedBefore(ctx, cfg.Range, cp)
	if err == nil && missed {
		err = errNumbersOnly
	}
	if err != nil {
		return rep, fmt.Errorf("backfill %s: %w", id, err)
	}
	if cp == nil {
		if cp, err = begin(ctx, src, dst, id, cfg.Range); err != nil {
			return rep, err
		}
	} else {
		rep.Resumed = cp.read > 0 || cp.rejected > 0
	}
	rep.Read, rep.New, rep.Rejected = cp.read, cp.new, cp.rejected
	rep.Position = finite(cp.pos.time)
	if cp.finished {
		rep.AlreadyDone, rep.Done = true, true
	} else {
		if rep.First, rep.Last, err = src.span(ctx, cfg.Range); err != nil {
			return rep, err
		}
		if cfg.Progress != nil {
			cfg.Progress(rep.Progress) // where this run starts
		}
		if err := copyChunks(ctx, src, dst, cfg, cp, &rep); err != nil {
			return rep, err
		}
		if _, err := pool.Exec(ctx, "UPDATE "+pgx.Identifier{schema, checkpointTable}.Sanitize()+
			" SET finished_at = now(), updated_at = now() WHERE id = $1", id); err != nil {
			return rep, fmt.Errorf("finish checkpoint: %w", err)
		}
		rep.Done = true
	}
	if cp, err = readCheckpoint(ctx, pool, schema, id); err != nil {
		return rep, err
	}
	if !cp.refreshed {
		if err := refresh(ctx, dst, cp, &rep); err != nil {
			return rep, err
		}
	}
	if cfg.Progress != nil {
		cfg.Progress(rep.Progress)
	}
	return rep, nil
}

// errNumbersOnly is a stored copy begun by a Sluice that copied numbers only, from a source
// holding typed readings the copy has passed: resuming it would leave them behind.
var errNumbersOnly = errors.New("this copy was begun by a version of Sluice that copied numbers only, and the source holds text, boolean or location readings: run it again with --restart to copy them too (readings already in the destination are skipped)")

// begin stores a new checkpoint; for a legacy query it also records, in the same
// transaction, the rows whose time is NULL (they have no place in the time order).
func begin(ctx context.Context, src *Source, dst *sink.Writer, id string, r Range) (*checkpoint, error) {
	schema := dst.Config().Schema
	err := pgx.BeginFunc(ctx, dst.Pool(), func(tx pgx.Tx) error {
		// Two runs of one copy starting at once: the second finds the first's checkpoint.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(tablesLock)); err != nil {
			return fmt.Errorf("store checkpoint: %w", err)
		}
		if cp, err := readCheckpoint(ctx, tx, schema, id); err != nil || cp != nil {
			return err
		}
		var rs []reject
		err := src.nullTimes(ctx, r, func(x srcRow) error {
			rs = append(rs, reject{row: x, reason: "time is missing"})
			if len(rs) == 1000 {
				err := storeRejects(ctx, tx, schema, id, rs)
				rs = rs[:0]
				return err
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := storeRejects(ctx, tx, schema, id, rs); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO `+pgx.Identifier{schema, checkpointTable}.Sanitize()+` (id, source, since, until, tenant, typed, rows_rejected)
VALUES ($1, $2, $3, $4, $5, true, (SELECT count(*) FROM `+pgx.Identifier{schema, rejectsTable}.Sanitize()+` WHERE backfill = $1))`,
			id, src.String(), nullTime(r.Since), nullTime(r.Until), r.Tenant)
		if err != nil {
			return fmt.Errorf("store checkpoint: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return readCheckpoint(ctx, dst.Pool(), schema, id)
}

// forget deletes a copy's checkpoint and rejects.
func forget(ctx context.Context, dst *sink.Writer, id string) error {
	schema := dst.Config().Schema
	return pgx.BeginFunc(ctx, dst.Pool(), func(tx pgx.Tx) error {
		for _, t := range []string{checkpointTable, rejectsTable} {
			col := "id"
			if t == rejectsTable {
				col = "backfill"
			}
			if _, err := tx.Exec(ctx, "DELETE FROM "+pgx.Identifier{schema, t}.Sanitize()+" WHERE "+col+" = $1", id); err != nil {
				return fmt.Errorf("forget checkpoint: %w", err)
			}
		}
		return nil
	})
}

// copyChunks reads chunks from src while the previous one is written to dst.
func copyChunks(ctx context.Context, src *Source, dst *sink.Writer, cfg BackfillConfig, cp *checkpoint, rep *Report) error {
	g, gctx := errgroup.WithContext(ctx)
	chunks := make(chan []srcRow, 1)
	g.Go(func() error {
		defer close(chunks)
		rd := newReader(src, cfg.Range, cp.pos, cfg.Chunk, rep.First, rep.Last)
		for {
			rows, err := rd.next(gctx)
			if err != nil || rows == nil {
				return err
			}
			select {
			case chunks <- rows:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
	})
	g.Go(func() error {
		pos := cp.pos
		for rows := range chunks {
			next, err := writeChunk(gctx, dst, rep.ID, pos, rows, rep)
			if err != nil {
				return err
			}
			pos = next
			rep.RunRows += int64(len(rows))
			rep.Position = finite(pos.time)
			if cfg.Progress != nil {
				cfg.Progress(rep.Progress)
			}
			if cfg.Rate > 0 {
				due := rep.Started.Add(time.Duration(float64(rep.RunRows) / cfg.Rate * float64(time.Second)))
				if err := sleepUntil(gctx, due); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return g.Wait()
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// writeChunk writes one chunk and moves the checkpoint from prev past it, in one transaction.
func writeChunk(ctx context.Context, dst *sink.Writer, id string, prev position, rows []srcRow, rep *Report) (position, error) {
	var rejects []reject
	good := make([]sink.Row, 0, len(rows))
	from := make([]int, 0, len(rows))
	var lo, hi pgtype.Timestamptz
	for i := range rows {
		x := &rows[i]
		if why := unwritable(x); why != "" {
			rejects = append(rejects, reject{row: *x, reason: why})
			continue
		}
		t := x.time.Time
		if !lo.Valid || t.Before(lo.Time) {
			lo = pgtype.Timestamptz{Time: t, Valid: true}
		}
		if !hi.Valid || t.After(hi.Time) {
			hi = pgtype.Timestamptz{Time: t, Valid: true}
		}
		good = append(good, x.sinkRow())
		from = append(from, i)
	}
	last := rows[len(rows)-1]
	next := position{time: last.time, key: last.key}
	schema := dst.Config().Schema
	res, err := dst.Write(ctx, good, func(ctx context.Context, tx pgx.Tx, res *sink.WriteResult) error {
		all := rejects
		for _, r := range res.Refused {
			all = append(all, reject{row: rows[from[r.Index]], reason: r.Reason, sqlstate: r.SQLState})
		}
		if err := storeRejects(ctx, tx, schema, id, all); err != nil {
			return err
		}
		return advance(ctx, tx, schema, id, prev, next, int64(len(rows)), res.Inserted, int64(len(all)), lo, hi)
	})
	if err != nil {
		return prev, fmt.Errorf("write chunk after %s: %w", describe(prev), err)
	}
	rep.Read += int64(len(rows))
	rep.New += res.Inserted
	rep.Rejected += int64(len(rejects) + len(res.Refused))
	return next, nil
}

// unwritable says why a source row cannot even be given to the writer, or "".
func unwritable(x *srcRow) string {
	switch {
	case !x.time.Valid:
		return "time is missing"
	case x.time.InfinityModifier != pgtype.Finite:
		return "time is infinite"
	case !x.tenant.Valid || x.tenant.String == "":
		return "tenant is empty"
	case !x.device.Valid || x.device.String == "":
		return "device is empty"
	case !x.metric.Valid:
		return "metric is empty"
	}
	switch x.typ {
	case sluice.TypeText:
		if !x.text.Valid {
			return "text value is missing"
		}
	case sluice.TypeBool:
		if !x.flag.Valid {
			return "boolean value is missing"
		}
	case sluice.TypeLocation:
		if !x.lat.Valid || !x.lon.Valid {
			return "location is missing"
		}
	default:
		if !x.value.Valid {
			return "value is missing"
		}
	}
	return ""
}

// sinkRow is x as the writer takes it; x must be writable.
func (x *srcRow) sinkRow() sink.Row {
	r := sink.Row{Time: x.time.Time, Tenant: x.tenant.String, Device: x.device.String, Metric: x.metric.String,
		Unit: x.unit.String, Type: x.typ, Value: x.value.Float64}
	switch x.typ {
	case sluice.TypeText:
		r.Text = x.text.String
	case sluice.TypeBool:
		r.Value = 0
		if x.flag.Bool {
			r.Value = 1
		}
	case sluice.TypeLocation:
		r.Location = &sluice.Location{Lat: x.lat.Float64, Lon: x.lon.Float64}
		if x.alt.Valid {
			alt := x.alt.Float64
			r.Location.Alt = &alt
		}
	}
	return r
}

func describe(p position) string {
	if !p.time.Valid {
		return "the start"
	}
	if t := finite(p.time); !t.IsZero() {
		return t.UTC().Format(time.RFC3339Nano)
	}
	return "an infinite time"
}
