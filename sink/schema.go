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
	{2, "class registry, latest values", `
CREATE TABLE IF NOT EXISTS sluice_classes (
	name           text PRIMARY KEY,
	chunk_interval interval    NOT NULL,
	compress_after interval    NOT NULL DEFAULT '0',
	retention      interval    NOT NULL DEFAULT '0',
	updated_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO sluice_classes (name, chunk_interval, compress_after) VALUES ('standard', '1 day', '7 days')
	ON CONFLICT (name) DO NOTHING;
CREATE TABLE IF NOT EXISTS latest (
	series_id bigint           PRIMARY KEY,
	time      timestamptz      NOT NULL,
	value     double precision NOT NULL
);
INSERT INTO latest (series_id, time, value)
	SELECT DISTINCT ON (series_id) series_id, time, value FROM measurements_standard ORDER BY series_id, time DESC
	ON CONFLICT (series_id) DO NOTHING;
`},
	{3, "series value type", `
ALTER TABLE series ADD COLUMN IF NOT EXISTS type text NOT NULL DEFAULT 'number'
	CONSTRAINT series_type_check CHECK (type IN ('number', 'text', 'bool', 'location'));
`},
	{4, "device inventory", `
CREATE TABLE IF NOT EXISTS devices (
	tenant      text        NOT NULL,
	device      text        NOT NULL,
	first_seen  timestamptz NOT NULL,
	last_seen   timestamptz NOT NULL,
	uplinks     bigint      NOT NULL DEFAULT 0,
	decoder     text        NOT NULL DEFAULT '',
	last_fcnt   bigint,
	fcnt_at     timestamptz,
	last_rssi   double precision,
	rssi_at     timestamptz,
	last_snr    double precision,
	snr_at      timestamptz,
	gateways    integer,
	gateways_at timestamptz,
	battery     double precision,
	battery_at  timestamptz,
	decode_failures bigint  NOT NULL DEFAULT 0,
	last_failure_at timestamptz,
	last_error  text,
	updated_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant, device)
);
CREATE INDEX IF NOT EXISTS devices_last_seen_idx ON devices (last_seen);
`},
}

// migrationLock is the advisory lock key that serialises migrations across processes.
const migrationLock = 0x51_0C_E5_C4_E4_A0

// querier is what reading the database's state needs (a pooled connection or a transaction).
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Migrate brings a target's schema up to date. Under an advisory lock (so two processes may
// run it at once) it creates the schema, applies the missing versioned migrations, each in its
// own transaction, then reconciles the storage with cfg.Storage: one table per class and,
// with the timescaledb extension, hypertables, compression, retention, continuous aggregates
// and their policies; last the views. It returns what it did and what it skipped and why, one
// line each, for `sluice migrate` to print.
func Migrate(ctx context.Context, pool *pgxpool.Pool, cfg TargetConfig, log zerolog.Logger) ([]string, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrationLock)); err != nil {
		return nil, fmt.Errorf("migrate: take lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrationLock))

	q := pgx.Identifier{cfg.Schema}.Sanitize()
	if _, err := conn.Exec(ctx, schemaSetup(cfg.Schema)); err != nil {
		return nil, fmt.Errorf("migrate: create schema %s: %w", cfg.Schema, err)
	}
	current, err := schemaVersion(ctx, conn, cfg.Schema)
	if err != nil {
		return nil, err
	}
	var done []string
	changes := 0
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
		changes++
		log.Info().Int("version", m.version).Str("name", m.name).Msg("schema migration applied")
	}
	plan, err := planStorage(ctx, conn, cfg)
	if err != nil {
		return done, err
	}
	done = append(done, plan.notes...)
	for _, s := range plan.steps {
		if _, err := conn.Exec(ctx, s.sql); err != nil {
			return done, fmt.Errorf("migrate: %s: %w", firstLine(s.sql), err)
		}
		if s.report != "" {
			done = append(done, s.report)
			changes++
			log.Info().Str("change", s.report).Msg("schema storage reconciled")
		}
	}
	for _, s := range plan.skipped {
		done = append(done, "skipped "+s)
	}
	if len(plan.skipped) > 0 {
		// Expected on plain PostgreSQL (the quick start): information, not a warning on every
		// start.
		log.Info().Strs("skipped", plan.skipped).Msg("schema: features this database cannot have are skipped")
	}
	return append(done, summary(cfg.Schema, changes, len(plan.skipped))), nil
}

// summary is the last line of a migration: what it did, in one line.
func summary(schema string, changes, skipped int) string {
	s := fmt.Sprintf("schema %s: applied %d %s", schema, changes, plural(changes, "change", "changes"))
	if changes == 0 {
		s = fmt.Sprintf("schema %s: nothing to change, it matches the configuration", schema)
	}
	if skipped > 0 {
		s += fmt.Sprintf(" (%d %s skipped, listed above)", skipped, plural(skipped, "feature", "features"))
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Plan returns the SQL Migrate would run now, without changing anything: the pending versioned
// migrations and the storage statements, each under a comment saying what it does, then what
// would be skipped and why.
func Plan(ctx context.Context, pool *pgxpool.Pool, cfg TargetConfig) ([]string, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("plan migration: %w", err)
	}
	defer conn.Release()
	current, err := schemaVersion(ctx, conn, cfg.Schema)
	if err != nil {
		return nil, err
	}
	var out []string
	if current == 0 {
		out = append(out, schemaSetup(cfg.Schema)+";")
	}
	for _, m := range migrations {
		if m.version > current {
			out = append(out, fmt.Sprintf("-- migration %d: %s\nBEGIN;\nSET LOCAL search_path TO %s;\n%s\nINSERT INTO sluice_schema_version (version, name) VALUES (%d, %s);\nCOMMIT;",
				m.version, m.name, pgx.Identifier{cfg.Schema}.Sanitize(), strings.TrimSpace(m.sql), m.version, quoteLiteral(m.name)))
		}
	}
	plan, err := planStorage(ctx, conn, cfg)
	if err != nil {
		return nil, err
	}
	return append(out, plan.render()...), nil
}

// render formats a plan as commented SQL.
func (p *storagePlan) render() []string {
	var out []string
	for _, n := range p.notes {
		out = append(out, "-- "+n)
	}
	for _, s := range p.steps {
		if s.report != "" {
			out = append(out, "-- "+s.report+"\n"+s.sql+";")
		} else {
			out = append(out, s.sql+";")
		}
	}
	for _, s := range p.skipped {
		out = append(out, "-- skipped "+s)
	}
	return out
}

// schemaSetup creates the schema and its migration record.
func schemaSetup(schema string) string {
	q := pgx.Identifier{schema}.Sanitize()
	return "CREATE SCHEMA IF NOT EXISTS " + q + ";\n" +
		"CREATE TABLE IF NOT EXISTS " + q + ".sluice_schema_version (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
}

// schemaVersion returns the last applied migration, 0 for a new schema.
func schemaVersion(ctx context.Context, conn querier, schema string) (int, error) {
	var v int
	err := conn.QueryRow(ctx, "SELECT CASE WHEN to_regclass($1) IS NULL THEN 0 ELSE 1 END",
		pgx.Identifier{schema, "sluice_schema_version"}.Sanitize()).Scan(&v)
	if err != nil || v == 0 {
		return 0, wrap("migrate: read version", err)
	}
	err = conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+pgx.Identifier{schema, "sluice_schema_version"}.Sanitize()).Scan(&v)
	return v, wrap("migrate: read version", err)
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// timescaleVersion returns the installed timescaledb extension version, or "", and the
// version the server offers.
func timescaleVersion(ctx context.Context, conn querier) (installed, available string, err error) {
	err = conn.QueryRow(ctx, `SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'), ''),
	coalesce((SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'), '')`).Scan(&installed, &available)
	return installed, available, wrap("migrate: detect timescaledb", err)
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// MigrateTarget connects to one target's database and migrates its schema; with dryRun it
// returns the SQL it would run instead.
func MigrateTarget(ctx context.Context, cfg TargetConfig, dryRun bool, log zerolog.Logger) ([]string, error) {
	pool, err := newPool(cfg.DatabaseURL, cfg.Schema, 1)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if dryRun {
		return Plan(ctx, pool, cfg)
	}
	return Migrate(ctx, pool, cfg, log)
}
