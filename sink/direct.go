package sink

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice"
)

// Row is one reading written by a Writer: a number in Value, or, by Type, a text in Text, a
// boolean in Value (1 or 0) or a location in Location.
type Row struct {
	Time                         time.Time
	Tenant, Device, Metric, Unit string
	Type                         sluice.ValueType
	Value                        float64
	Text                         string
	Location                     *sluice.Location
}

// Refusal is a row that Writer.Write did not write, and why.
type Refusal struct {
	Index    int    // into the rows given to Write
	Reason   string // the check the row failed, or the database's words
	SQLState string // "" when the row failed a check before reaching the database
}

// WriteResult is what one Writer.Write did.
type WriteResult struct {
	Inserted int64 // rows that were new; the others were there already
	Refused  []Refusal
}

// Writer writes readings to one target's database from outside the consumer loop (backfills,
// tools), through the very path the sink uses: rows checked against the target's limits,
// series ids resolved and classes assigned by the target's storage rules, COPY into staging,
// INSERT … ON CONFLICT DO NOTHING into each class's table, latest moved forward only. It is
// safe for concurrent use; Close releases its connections.
type Writer struct {
	cfg  TargetConfig
	pool *pgxpool.Pool
	w    *writer
	now  func() time.Time
}

// NewWriter validates cfg and builds a writer; it connects to nothing until used.
func NewWriter(cfg TargetConfig) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pool, err := newPool(cfg.DatabaseURL, cfg.Schema, cfg.MaxConns)
	if err != nil {
		return nil, err
	}
	return &Writer{cfg: cfg, pool: pool, w: newWriter(pool, cfg.Schema, cfg.Storage), now: time.Now}, nil
}

// Config returns the target configuration the writer was built from.
func (w *Writer) Config() TargetConfig { return w.cfg }

// Pool returns the writer's connection pool, whose connections use the target's schema.
func (w *Writer) Pool() *pgxpool.Pool { return w.pool }

// Migrate brings the target's schema up to date (see Migrate).
func (w *Writer) Migrate(ctx context.Context, log zerolog.Logger) ([]string, error) {
	return Migrate(ctx, w.pool, w.cfg, log)
}

// Plan returns the SQL Migrate would run now (see Plan).
func (w *Writer) Plan(ctx context.Context) ([]string, error) { return Plan(ctx, w.pool, w.cfg) }

// Close releases the connections. It is idempotent.
func (w *Writer) Close() error {
	w.pool.Close()
	return nil
}

// Write stores rows in one transaction. Rows failing the target's limits are refused before
// the database sees them; rows the database refuses for their data are isolated by halving
// inside the transaction (savepoints), so a bad row costs only itself. Then commit, when not
// nil, runs in the same transaction with the result, so that whatever it records (a
// checkpoint, the refusals) commits exactly with the rows. A transient error (connection,
// timeout, commit's own) is returned and nothing is committed.
func (w *Writer) Write(ctx context.Context, rows []Row, commit func(ctx context.Context, tx pgx.Tx, res *WriteResult) error) (WriteResult, error) {
	var res WriteResult
	now := w.now()
	valid := make([]row, 0, len(rows))
	index := make([]int, 0, len(rows))
	for i := range rows {
		r := &rows[i]
		u := sluice.Uplink{Tenant: r.Tenant, Device: r.Device}
		rd := sluice.Reading{Metric: r.Metric, Unit: r.Unit, Time: r.Time, Type: r.Type, Value: r.Value, Text: r.Text, Location: r.Location}
		if why := w.cfg.Limits.check(&u, &rd, now); why != "" {
			res.Refused = append(res.Refused, Refusal{Index: i, Reason: why})
			continue
		}
		k, _ := kindOf(r.Type) // check refused the types it does not know
		valid = append(valid, row{key: seriesKey{r.Tenant, r.Device, r.Metric}, unit: r.Unit, time: r.Time, value: r.Value,
			text: r.Text, loc: r.Location, kind: k})
		index = append(index, i)
	}
	valid, refs, index, err := w.resolveEach(ctx, valid, index, &res)
	if err != nil {
		return WriteResult{}, err
	}
	valid, refs, index = refuseConflicts(valid, refs, index, &res)
	err = pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		if err := w.mergeIsolating(ctx, tx, valid, refs, index, &res); err != nil {
			return err
		}
		if commit != nil {
			return commit(ctx, tx, &res)
		}
		return nil
	})
	if err != nil {
		return WriteResult{}, err
	}
	return res, nil
}

// refuseConflicts refuses the rows whose type differs from their series' type (checkKinds one
// row at a time instead of failing the batch) and drops them from rows, refs and index.
func refuseConflicts(rows []row, refs []seriesRef, index []int, res *WriteResult) ([]row, []seriesRef, []int) {
	keep := 0
	for k := range rows {
		if _, err := checkKinds(rows[k:k+1], refs[k:k+1]); err != nil {
			res.Refused = append(res.Refused, Refusal{Index: index[k], Reason: err.Error()})
			continue
		}
		rows[keep], refs[keep], index[keep] = rows[k], refs[k], index[k]
		keep++
	}
	return rows[:keep], refs[:keep], index[:keep]
}

// resolveEach resolves the series of rows; when the database refuses the batch's series for
// their data it resolves them one at a time, refusing the rows it cannot, and drops them
// from rows and index, returning what is left of them.
func (w *Writer) resolveEach(ctx context.Context, rows []row, index []int, res *WriteResult) ([]row, []seriesRef, []int, error) {
	refs, err := w.w.seriesIDs(ctx, rows)
	if data, _ := dataFault(err); err == nil || !data {
		return rows, refs, index, err
	}
	refs = refs[:0]
	keep := 0
	for k := range rows {
		one, err := w.w.seriesIDs(ctx, rows[k:k+1])
		if err != nil {
			data, state := dataFault(err)
			if !data {
				return nil, nil, nil, err
			}
			res.Refused = append(res.Refused, Refusal{Index: index[k], Reason: pgMessage(err), SQLState: state})
			continue
		}
		rows[keep], index[keep] = rows[k], index[k]
		refs = append(refs, one[0])
		keep++
	}
	return rows[:keep], refs, index[:keep], nil
}

// mergeIsolating merges rows in tx, each attempt under a savepoint: a range the database
// refuses for its data is rolled back and halved, down to single rows, which are refused.
func (w *Writer) mergeIsolating(ctx context.Context, tx pgx.Tx, rows []row, refs []seriesRef, index []int, res *WriteResult) error {
	type span struct{ lo, hi int }
	stack := []span{{0, len(rows)}}
	staged := false
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if s.lo >= s.hi {
			continue
		}
		if staged {
			if _, err := tx.Exec(ctx, "TRUNCATE "+stageTable+", "+typedStageTable); err != nil {
				return fmt.Errorf("empty staging table: %w", err)
			}
		}
		sp, err := tx.Begin(ctx)
		if err != nil {
			return fmt.Errorf("savepoint: %w", err)
		}
		n, err := w.w.merge(ctx, sp, rows[s.lo:s.hi], refs[s.lo:s.hi])
		if err == nil {
			if err := sp.Commit(ctx); err != nil {
				return fmt.Errorf("release savepoint: %w", err)
			}
			res.Inserted += n
			staged = true
			continue
		}
		if rerr := sp.Rollback(ctx); rerr != nil {
			return fmt.Errorf("roll back to savepoint: %w", rerr)
		}
		data, state := dataFault(err)
		if !data {
			return err
		}
		if s.hi-s.lo == 1 {
			res.Refused = append(res.Refused, Refusal{Index: index[s.lo], Reason: pgMessage(err), SQLState: state})
			continue
		}
		mid := s.lo + (s.hi-s.lo)/2
		stack = append(stack, span{mid, s.hi}, span{s.lo, mid})
	}
	return nil
}

// dataFault reports whether the database refused the rows themselves (see faultOf), and
// the SQLSTATE.
func dataFault(err error) (bool, string) {
	f, state := faultOf(err)
	return f == faultData, state
}
