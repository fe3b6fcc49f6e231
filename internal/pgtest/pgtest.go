// Package pgtest gives tests a real PostgreSQL: a fresh schema in the database named by
// SLUICE_TEST_DATABASE_URL (default: the local server on 127.0.0.1:5432), dropped when the
// test ends. A test that cannot reach the database fails; it never skips.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is used when SLUICE_TEST_DATABASE_URL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// URL returns the test database's URL.
func URL() string {
	if u := os.Getenv("SLUICE_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

var seq atomic.Int64

// Schema creates a schema of its own for t and drops it (with everything in it) when t ends.
func Schema(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6, seq.Add(1))
	Exec(t, "CREATE SCHEMA "+name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, URL())
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+name+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// Connect opens a connection whose search_path is schema alone (so a table missing there is an
// error, never another schema's table), closed when t ends. Use it for connections a test
// keeps; Count and Exec open and close their own.
func Connect(t testing.TB, schema string) *pgx.Conn {
	t.Helper()
	conn, err := open(schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func open(schema string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(URL())
	if err != nil {
		return nil, fmt.Errorf("SLUICE_TEST_DATABASE_URL: %w", err)
	}
	if schema != "" {
		cfg.RuntimeParams["search_path"] = schema
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the test database %s: %w\n"+
			"Run the tests with ./scripts/test (it starts a throwaway PostgreSQL when none answers), "+
			"or point SLUICE_TEST_DATABASE_URL at a PostgreSQL 13+ server.", redact(URL()), err)
	}
	return conn, nil
}

// Query runs fn with a connection to schema that is closed when fn returns.
func Query(t testing.TB, schema string, fn func(conn *pgx.Conn) error) {
	t.Helper()
	conn, err := open(schema)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := fn(conn); err != nil {
		t.Fatal(err)
	}
}

// Exec runs sql in the test database (outside any test schema).
func Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	Query(t, "", func(conn *pgx.Conn) error {
		if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
		return nil
	})
}

// Count runs a counting query in schema and returns its single integer.
func Count(t testing.TB, schema, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	Query(t, schema, func(conn *pgx.Conn) error {
		if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
		return nil
	})
	return n
}

func redact(u string) string {
	if at := strings.LastIndex(u, "@"); at > 0 {
		if i := strings.Index(u, "://"); i > 0 && i < at {
			return u[:i+3] + "…" + u[at:]
		}
	}
	return u
}
