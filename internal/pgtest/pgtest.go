// Package pgtest gives tests a real PostgreSQL: a fresh schema in the database named by
// SLUICE_TEST_DATABASE_URL (default: the local server on 127.0.0.1:5432), dropped when the
// test ends. A test that cannot reach the database fails; it never skips. Tests of TimescaleDB
// features get their database from Timescale, which skips loudly where there is none.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultURL is used when SLUICE_TEST_DATABASE_URL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// DB is one test database server.
type DB struct{ URL string }

// Default is the test database: SLUICE_TEST_DATABASE_URL, else DefaultURL.
func Default() DB { return DB{URL()} }

// URL returns the test database's URL.
func URL() string {
	if u := os.Getenv("SLUICE_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

var seq atomic.Int64

// Schema creates a schema of its own for t in the test database; see DB.Schema.
func Schema(t testing.TB) string { return Default().Schema(t) }

// Connect opens a connection to schema in the test database; see DB.Connect.
func Connect(t testing.TB, schema string) *pgx.Conn { return Default().Connect(t, schema) }

// Query runs fn with a connection to schema in the test database; see DB.Query.
func Query(t testing.TB, schema string, fn func(conn *pgx.Conn) error) {
	t.Helper()
	Default().Query(t, schema, fn)
}

// Exec runs sql in the test database (outside any test schema).
func Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	Default().Exec(t, sql, args...)
}

// Count runs a counting query in schema of the test database and returns its single integer.
func Count(t testing.TB, schema, sql string, args ...any) int64 {
	t.Helper()
	return Default().Count(t, schema, sql, args...)
}

// Schema creates a schema of its own for t and drops it (with everything in it) when t ends.
func (d DB) Schema(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6, seq.Add(1))
	d.Exec(t, "CREATE SCHEMA "+name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, d.URL)
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		// A TimescaleDB background job working on the schema's tables can deadlock with the
		// drop; the drop is retried, never skipped.
		for attempt := 1; ; attempt++ {
			_, err := conn.Exec(ctx, "DROP SCHEMA "+name+" CASCADE")
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "40P01" && attempt < 5 {
				continue
			}
			if err != nil {
				t.Errorf("drop schema %s: %v", name, err)
			}
			return
		}
	})
	return name
}

// Connect opens a connection whose search_path is schema alone (so a table missing there is an
// error, never another schema's table), closed when t ends. Use it for connections a test
// keeps; Count and Exec open and close their own.
func (d DB) Connect(t testing.TB, schema string) *pgx.Conn {
	t.Helper()
	conn, err := d.open(schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func (d DB) open(schema string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(d.URL)
	if err != nil {
		return nil, fmt.Errorf("test database URL: %w", err)
	}
	if schema != "" {
		cfg.RuntimeParams["search_path"] = schema
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the test database %s: %w\n"+
			"Run the tests with ./scripts/test (it starts a throwaway PostgreSQL when none answers), "+
			"or point SLUICE_TEST_DATABASE_URL at a PostgreSQL 13+ server", redact(d.URL), err)
	}
	return conn, nil
}

// Query runs fn with a connection to schema that is closed when fn returns.
func (d DB) Query(t testing.TB, schema string, fn func(conn *pgx.Conn) error) {
	t.Helper()
	conn, err := d.open(schema)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := fn(conn); err != nil {
		t.Fatal(err)
	}
}

// Exec runs sql in the database (outside any test schema).
func (d DB) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	d.Query(t, "", func(conn *pgx.Conn) error {
		if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
		return nil
	})
}

// Count runs a counting query in schema and returns its single integer.
func (d DB) Count(t testing.TB, schema, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	d.Query(t, schema, func(conn *pgx.Conn) error {
		if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
		return nil
	})
	return n
}

// TimescaleEnv names the TimescaleDB test database.
const TimescaleEnv = "SLUICE_TEST_TIMESCALE_URL"

var (
	tsOnce   sync.Once
	tsDB     DB
	tsReason string
)

// Timescale returns a database with the timescaledb extension installed: the one named by
// SLUICE_TEST_TIMESCALE_URL, else the test database when it has the extension. Without either
// it skips t, and says so on standard error once per test binary, so a run without
// TimescaleDB never looks like a run that tested it. A URL that is set but does not answer, or
// whose database lacks the extension, fails t.
func Timescale(t testing.TB) DB {
	t.Helper()
	tsOnce.Do(func() {
		url := os.Getenv(TimescaleEnv)
		if url == "" {
			if hasExtension(Default()) {
				tsDB = Default()
				return
			}
			tsReason = fmt.Sprintf("TIMESCALEDB TESTS SKIPPED: %s is not set and the test database has no timescaledb extension", TimescaleEnv)
			fmt.Fprintf(os.Stderr, "\n*** %s ***\n\n", tsReason)
			return
		}
		tsDB = DB{url}
		if !hasExtension(tsDB) {
			tsReason = fmt.Sprintf("%s=%s: no timescaledb extension in that database (CREATE EXTENSION timescaledb; it must be in shared_preload_libraries)", TimescaleEnv, redact(url))
		}
	})
	switch {
	case tsDB.URL == "":
		t.Skip(tsReason)
	case tsReason != "":
		t.Fatal(tsReason)
	}
	return tsDB
}

func hasExtension(d DB) bool {
	conn, err := d.open("")
	if err != nil {
		return false
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").Scan(&n)
	return err == nil && n > 0
}

func redact(u string) string {
	if at := strings.LastIndex(u, "@"); at > 0 {
		if i := strings.Index(u, "://"); i > 0 && i < at {
			return u[:i+3] + "…" + u[at:]
		}
	}
	return u
}

// Database creates a database of its own for t on d's server, with the CREATE DATABASE
// options given (e.g. "ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"),
// and drops it when t ends. It returns the new database, reached as d is.
func (d DB) Database(t testing.TB, options string) DB {
	t.Helper()
	name := fmt.Sprintf("t_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6, seq.Add(1))
	d.Exec(t, "CREATE DATABASE "+name+" "+options)
	u, err := url.Parse(d.URL)
	if err != nil || u.Scheme == "" {
		t.Fatalf("test database URL %s: want postgres://…/dbname", redact(d.URL))
	}
	u.Path = "/" + name
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, d.URL)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return DB{u.String()}
}
