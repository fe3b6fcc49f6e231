package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-iot/sluice"
)

// The checkpoint and dead-letter tables live in the destination schema, so that a copy's
// progress commits in the same transaction as the rows it describes.
const (
	checkpointTable = "sluice_backfill"
	rejectsTable    = "sluice_backfill_rejects"
)

func createTables(schema string) string {
	q := func(n string) string { return pgx.Identifier{schema, n}.Sanitize() }
	return `CREATE TABLE IF NOT EXISTS ` + q(checkpointTable) + ` (
	id            text PRIMARY KEY,
	source        text NOT NULL,
	since         timestamptz,
	until         timestamptz,
	tenant        text NOT NULL DEFAULT '',
	pos_time      timestamptz,
	pos_key       text[] NOT NULL DEFAULT '{}',
	rows_read     bigint NOT NULL DEFAULT 0,
	rows_new      bigint NOT NULL DEFAULT 0,
	rows_rejected bigint NOT NULL DEFAULT 0,
	min_time      timestamptz,
	max_time      timestamptz,
	started_at    timestamptz NOT NULL DEFAULT now(),
	updated_at    timestamptz NOT NULL DEFAULT now(),
	finished_at   timestamptz,
	refreshed_at  timestamptz
);
CREATE TABLE IF NOT EXISTS ` + q(rejectsTable) + ` (
	backfill text NOT NULL,
	at       timestamptz NOT NULL DEFAULT now(),
	time     timestamptz,
	tenant   text,
	device   text,
	metric   text,
	unit     text,
	value    double precision,
	reason   text NOT NULL,
	sqlstate text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS ` + pgx.Identifier{rejectsTable + "_backfill_idx"}.Sanitize() + ` ON ` + q(rejectsTable) + ` (backfill, time);
ALTER TABLE ` + q(checkpointTable) + ` ADD COLUMN IF NOT EXISTS typed boolean NOT NULL DEFAULT false;
ALTER TABLE ` + q(rejectsTable) + ` ADD COLUMN IF NOT EXISTS type text NOT NULL DEFAULT 'number',
	ADD COLUMN IF NOT EXISTS text text, ADD COLUMN IF NOT EXISTS latitude double precision,
	ADD COLUMN IF NOT EXISTS longitude double precision, ADD COLUMN IF NOT EXISTS altitude double precision`
}

// checkpoint is one copy's progress, as stored.
type checkpoint struct {
	id                  string
	pos                 position
	read, new, rejected int64
	minTime, maxTime    pgtype.Timestamptz
	finished, refreshed bool
	// typed is false for a copy begun by a Sluice that copied numbers only (the column's
	// default): resuming it would leave typed rows before its position behind, if any.
	typed   bool
	updated time.Time
}

// backfillID identifies a copy: the same source, range and tenant resume the same copy.
func backfillID(src *Source, r Range) string {
	h := sha256.New()
	for _, s := range []string{src.ident, stamp(r.Since), stamp(r.Until), r.Tenant} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func nullTime(t time.Time) pgtype.Timestamptz { return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()} }

// readCheckpoint returns the stored checkpoint of id, nil when there is none (or no table).
func readCheckpoint(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, schema, id string) (*checkpoint, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", pgx.Identifier{schema, checkpointTable}.Sanitize()).Scan(&exists); err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	if !exists {
		return nil, nil
	}
	c := &checkpoint{id: id}
	err := q.QueryRow(ctx, `SELECT pos_time, pos_key, rows_read, rows_new, rows_rejected, min_time, max_time,
	finished_at IS NOT NULL, refreshed_at IS NOT NULL, updated_at, typed
FROM `+pgx.Identifier{schema, checkpointTable}.Sanitize()+` WHERE id = $1`, id).Scan(
		&c.pos.time, &c.pos.key, &c.read, &c.new, &c.rejected, &c.minTime, &c.maxTime, &c.finished, &c.refreshed, &c.updated, &c.typed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	c.pos.first = !c.pos.time.Valid
	return c, nil
}

// errCheckpointMoved is another process advancing the same copy.
var errCheckpointMoved = errors.New("the checkpoint moved under this backfill: another backfill of the same source, range and tenant is running")

// advance moves the checkpoint from prev to the end of a chunk, in the chunk's transaction.
func advance(ctx context.Context, tx pgx.Tx, schema, id string, prev, next position, read, inserted, rejected int64, lo, hi pgtype.Timestamptz) error {
	tag, err := tx.Exec(ctx, `UPDATE `+pgx.Identifier{schema, checkpointTable}.Sanitize()+` SET
	pos_time = $2, pos_key = $3, rows_read = rows_read + $4, rows_new = rows_new + $5, rows_rejected = rows_rejected + $6,
	min_time = least(min_time, $7), max_time = greatest(max_time, $8), updated_at = now()
WHERE id = $1 AND pos_time IS NOT DISTINCT FROM $9 AND pos_key = $10`,
		id, next.time, next.key, read, inserted, rejected, lo, hi, prev.time, orEmpty(prev.key))
	if err != nil {
		return fmt.Errorf("advance checkpoint: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return errCheckpointMoved
	}
	return nil
}

func orEmpty(k []string) []string {
	if k == nil {
		return []string{}
	}
	return k
}

// reject is one row a backfill did not write, and why.
type reject struct {
	row      srcRow
	reason   string
	sqlstate string
}

// storeRejects records rejects in the destination within tx.
func storeRejects(ctx context.Context, tx pgx.Tx, schema, id string, rs []reject) error {
	if len(rs) == 0 {
		return nil
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{schema, rejectsTable},
		[]string{"backfill", "time", "tenant", "device", "metric", "unit", "type", "value", "text", "latitude", "longitude", "altitude", "reason", "sqlstate"},
		pgx.CopyFromSlice(len(rs), func(i int) ([]any, error) {
			r := &rs[i]
			value := r.row.value
			if r.row.typ == sluice.TypeBool && r.row.flag.Valid {
				value = pgtype.Float8{Valid: true}
				if r.row.flag.Bool {
					value.Float64 = 1
				}
			}
			return []any{id, r.row.time, storable(r.row.tenant), storable(r.row.device), storable(r.row.metric),
				storable(r.row.unit), r.row.typ.Name(), value, storable(r.row.text), r.row.lat, r.row.lon, r.row.alt, r.reason, r.sqlstate}, nil
		}))
	if err != nil {
		return fmt.Errorf("store %d rejected rows: %w", len(rs), err)
	}
	return nil
}

// storable makes a text PostgreSQL can store: invalid UTF-8 becomes U+FFFD, NUL becomes the
// symbol for it (the reason says what was wrong).
func storable(t pgtype.Text) pgtype.Text {
	if t.Valid {
		t.String = strings.ReplaceAll(strings.ToValidUTF8(t.String, "\uFFFD"), "\x00", "\u2400")
	}
	return t
}
