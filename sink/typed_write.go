package sink

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// kindConflict is a reading whose type differs from its series' type: a data fault, so the
// row is isolated and becomes a dead letter with this message.
type kindConflict struct {
	key         seriesKey
	stored, got kind
}

func (e *kindConflict) Error() string {
	return fmt.Sprintf("series %s/%s/%s holds %s values and this reading is a %s: a series keeps the type of its first reading (name the new value another metric)",
		e.key.tenant, e.key.device, e.key.metric, kinds[e.stored].name, kinds[e.got].name)
}

// checkKinds checks each row's kind against its series' kind and returns how many rows are
// typed (not numbers). A boolean for a series stored as numbers (as booleans were before
// typed values existed) is written as the number 1 or 0, so that such a series goes on; any
// other difference is a kindConflict.
func checkKinds(rows []row, refs []seriesRef) (typed int, err error) {
	for i := range rows {
		r := &rows[i]
		switch have := refs[i].kind; {
		case r.kind == have:
		case r.kind == kindBool && have == kindNumber:
			r.kind = kindNumber
		default:
			return 0, &kindConflict{key: r.key, stored: have, got: r.kind}
		}
		if r.kind != kindNumber {
			typed++
		}
	}
	return typed, nil
}

// numericRows returns the rows (and refs) that are numbers, leaving the arguments unchanged.
func numericRows(rows []row, refs []seriesRef, typed int) ([]row, []seriesRef) {
	nr, nf := make([]row, 0, len(rows)-typed), make([]seriesRef, 0, len(rows)-typed)
	for i := range rows {
		if rows[i].kind == kindNumber {
			nr, nf = append(nr, rows[i]), append(nf, refs[i])
		}
	}
	return nr, nf
}

// mergeTyped copies the typed rows (typed of them) into the typed staging table and inserts
// them into their class's table of their kind, skipping rows already there (same key as
// numbers: series_id, time). It returns how many rows were new.
func (w *writer) mergeTyped(ctx context.Context, tx pgx.Tx, rows []row, refs []seriesRef, typed int) (int64, error) {
	idx := make([]int, 0, typed)
	used := map[[2]int]bool{}
	for i := range rows {
		if k := rows[i].kind; k != kindNumber {
			idx = append(idx, i)
			used[[2]int{refs[i].class, int(k)}] = true
		}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{typedStageTable}, []string{"time", "series_id", "class", "kind", "text", "bool", "lat", "lon", "alt"},
		pgx.CopyFromSlice(len(idx), func(j int) ([]any, error) {
			i := idx[j]
			r := &rows[i]
			v := []any{r.time, refs[i].id, int16(refs[i].class), int16(r.kind), nil, nil, nil, nil, nil}
			switch r.kind {
			case kindText:
				v[4] = r.text
			case kindBool:
				v[5] = r.value != 0
			case kindLocation:
				v[6], v[7] = r.loc.Lat, r.loc.Lon
				if r.loc.Alt != nil {
					v[8] = *r.loc.Alt
				}
			}
			return v, nil
		}))
	if err != nil {
		return 0, fmt.Errorf("copy %d typed rows: %w", len(idx), err)
	}
	var inserted int64
	for c := range w.typedTables {
		for _, k := range typedKinds {
			if !used[[2]int{c, int(k)}] {
				continue
			}
			table := w.typedTables[c][k]
			tag, err := tx.Exec(ctx, fmt.Sprintf("INSERT INTO %s (time, series_id, %s) SELECT time, series_id, %s FROM %s WHERE class = %d AND kind = %d ORDER BY series_id, time ON CONFLICT DO NOTHING",
				table, kinds[k].insert, kinds[k].stage, typedStageTable, c, k))
			if err != nil {
				return 0, fmt.Errorf("merge %s rows into %s: %w", kinds[k].name, table, err)
			}
			inserted += tag.RowsAffected()
		}
	}
	return inserted, nil
}
