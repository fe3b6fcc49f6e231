package sink

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
)

// A migration is one versioned, idempotent step of the schema. Steps are applied in order, each
// in its own transaction, and recorded in sluice_schema_version.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations is the schema history. Never edit a released step: append a new one.
var migrations = []migration{
	{1, "series, measurements, readings view", `
CREATE TABLE IF NOT EXISTS series (
	id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant text NOT NULL,
	device text NOT NULL,
	metric text NOT NULL,
	unit   text NOT NULL DEFAULT '',
	class  text NOT NULL DEFAULT 'standard',
	UNIQUE (tenant, device, metric)
);
CREATE TABLE IF NOT EXISTS measurements_standard (
	time      timestamptz      NOT NULL,
	series_id bigint           NOT NULL,
	value     double precision NOT NULL,
	PRIMARY KEY (series_id, time)
);
CREATE INDEX IF NOT EXISTS measurements_standard_time_idx ON measurements_standard (time DESC);
CREATE OR REPLACE VIEW readings AS
	SELECT m.time, s.tenant, s.device, s.metric, m.value, s.unit
	FROM measurements_standard m JOIN series s ON s.id = m.series_id;
`},
}

// migrationLock is the advisory lock key that serialises migrations across processes.
const migrationLock = 0x51_0C_E5_C4_E4_A0

// Migrate brings the schema up to date: it creates the schema, applies missing migrations under
// an advisory lock (so two processes may run it at once), and turns the measurement tables into
// hypertables when the timescaledb extension is installed. It returns what it did, one line per
// step, for `sluice migrate` to print.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, log zerolog.Logger) ([]string, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrationLock)); err != nil {
		return nil, fmt.Errorf("migrate: take lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrationLock))

	q := pgx.Identifier{schema}.Sanitize()
	setup := "CREATE SCHEMA IF NOT EXISTS " + q + ";" +
		"CREATE TABLE IF NOT EXISTS " + q + ".sluice_schema_version (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
	if _, err := conn.Exec(ctx, setup); err != nil {
		return nil, fmt.Errorf("migrate: create schema %s: %w", schema, err)
	}
	var current int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+q+".sluice_schema_version").Scan(&current); err != nil {
		return nil, fmt.Errorf("migrate: read version: %w", err)
	}
	var done []string
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+q); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO sluice_schema_version (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return done, fmt.Errorf("migrate: step %d (%s): %w", m.version, m.name, err)
		}
		done = append(done, fmt.Sprintf("applied %d: %s", m.version, m.name))
		log.Info().Int("version", m.version).Str("name", m.name).Msg("schema migration applied")
	}
	ts, err := timescaleVersion(ctx, conn)
	if err != nil {
		return done, err
	}
	if ts == "" {
		done = append(done, "skipped hypertables: the timescaledb extension is not installed; measurements are plain tables")
		return done, nil
	}
	sql := fmt.Sprintf("SELECT create_hypertable(%s, by_range('time', INTERVAL '1 day'), if_not_exists => true, migrate_data => true)",
		quoteLiteral(schema+".measurements_standard"))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return done, fmt.Errorf("migrate: create hypertable: %w", err)
	}
	done = append(done, "timescaledb "+ts+": measurements_standard is a hypertable")
	return done, nil
}

// timescaleVersion returns the installed timescaledb extension version, or "".
func timescaleVersion(ctx context.Context, conn *pgxpool.Conn) (string, error) {
	var v string
	err := conn.QueryRow(ctx, "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").Scan(&v)
	if err == pgx.ErrNoRows {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("migrate: detect timescaledb: %w", err)
	}
	return v, nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// MigrateTarget connects to one target's database and migrates its schema.
func MigrateTarget(ctx context.Context, cfg TargetConfig, log zerolog.Logger) ([]string, error) {
	pool, err := newPool(cfg.DatabaseURL, cfg.Schema, 1)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	return Migrate(ctx, pool, cfg.Schema, log)
}
