package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/sink"
)

// seedReadings migrates schema public of db and fills it with 40 series × n minutes.
func seedReadings(t *testing.T, db pgtest.DB, n int) {
	t.Helper()
	tc := sink.DefaultTargetConfig()
	tc.DatabaseURL = db.URL
	if _, err := sink.MigrateTarget(context.Background(), tc, false, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	db.Exec(t, `INSERT INTO series (tenant, device, metric, unit)
	SELECT 'acme', 'dev-' || d, m, 'C' FROM generate_series(0, 19) d, unnest(ARRAY['temp', 'hum']) m`)
	db.Exec(t, `INSERT INTO measurements_standard (time, series_id, value)
	SELECT '2025-01-01'::timestamptz + g * interval '1 minute', s.id, round((random() * 100)::numeric, 3)
	FROM series s, generate_series(1, $1::int) g`, n)
	db.Exec(t, "ANALYZE measurements_standard")
}

// runSluice runs the command to completion and returns its exit code and output.
func runSluice(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(sluiceBin(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, out.String()
}

// A backfill killed with SIGKILL in the middle and run again ends identical to a clean copy,
// having read every row exactly once; verify then names a deleted row and a changed value.
func TestBackfillKilledAndResumedEqualsCleanCopy(t *testing.T) {
	const total = 40 * 5000
	srv := pgtest.Default()
	src, dst := srv.Database(t, ""), srv.Database(t, "")
	seedReadings(t, src, 5000)
	args := []string{"backfill", "--from", src.URL, "--to", dst.URL, "--chunk", "2000", "--rate", "40000"}

	cmd := exec.Command(sluiceBin(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var read int64
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && read < 20000; time.Sleep(20 * time.Millisecond) {
		read = countOrZeroIn(t, dst, "SELECT coalesce(max(rows_read), 0) FROM sluice_backfill")
	}
	cmd.Process.Kill()
	cmd.Wait()
	read = dst.Count(t, "public", "SELECT rows_read FROM sluice_backfill")
	if read < 20000 || read >= total {
		t.Fatalf("rows read when killed: %d; want the kill in the middle (output: %s)", read, out.String())
	}
	if n := dst.Count(t, "public", "SELECT count(*) FROM readings"); n != read {
		t.Fatalf("after the kill: %d readings, checkpoint says %d: the checkpoint is not exact", n, read)
	}
	t.Logf("killed after %d of %d rows", read, total)

	code, text := runSluice(t, append(args, "--dry-run")...)
	if code != 0 || !strings.Contains(text, fmt.Sprintf("resumes after %s: %d rows read, %d new, 0 rejected",
		time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(read/40)*time.Minute).Format(time.RFC3339), read, read)) ||
		!strings.Contains(text, "about 200000 rows") {
		t.Fatalf("dry run: exit %d, output:\n%s", code, text)
	}
	code, text = runSluice(t, args...)
	if code != 0 || !strings.Contains(text, "resuming backfill") || !strings.Contains(text, "200000 rows read, 200000 new, 0 rejected") {
		t.Fatalf("resume: exit %d, output:\n%s", code, text)
	}
	if n := dst.Count(t, "public", "SELECT count(*) FROM sluice_backfill WHERE rows_read = $1 AND rows_new = $1 AND finished_at IS NOT NULL", total); n != 1 {
		t.Fatal("the checkpoint does not say every row was read once and was new")
	}
	clean := srv.Database(t, "")
	if code, text := runSluice(t, "backfill", "--from", src.URL, "--to", clean.URL); code != 0 {
		t.Fatalf("clean backfill: exit %d\n%s", code, text)
	}
	for _, pair := range [][2]string{{dst.URL, clean.URL}, {src.URL, dst.URL}} {
		if code, text := runSluice(t, "verify", "--from", pair[0], "--to", pair[1]); code != 0 || !strings.HasPrefix(text, "EQUAL: 3360 series-hours") {
			t.Fatalf("verify: exit %d, want 0\n%s", code, text)
		}
	}
	if code, text := runSluice(t, "verify", "--by", "day", "--from", dst.URL, "--to", clean.URL); code != 0 || !strings.HasPrefix(text, "EQUAL: 160 series-days") {
		t.Fatalf("verify by day: exit %d, want 0\n%s", code, text)
	}

	dst.Exec(t, `DELETE FROM measurements_standard WHERE time = '2025-01-02T03:04:00Z'
	AND series_id = (SELECT id FROM series WHERE device = 'dev-7' AND metric = 'hum')`)
	dst.Exec(t, `UPDATE measurements_standard SET value = -1 WHERE time = '2025-01-03T00:00:00Z'
	AND series_id = (SELECT id FROM series WHERE device = 'dev-12' AND metric = 'temp')`)
	code, text = runSluice(t, "verify", "--from", src.URL, "--to", dst.URL)
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if code != 1 || len(lines) != 3 ||
		!strings.HasPrefix(lines[0], "acme/dev-12/temp 2025-01-03T00:00Z differs: from count=60 ") || !strings.Contains(lines[0], "; to count=60 ") || !strings.Contains(lines[0], " min=-1 ") ||
		!strings.HasPrefix(lines[1], "acme/dev-7/hum 2025-01-02T03:00Z differs: from count=60 ") || !strings.Contains(lines[1], "; to count=59 ") ||
		!strings.HasPrefix(lines[2], "DIFFERENT: 3360 series-hours") || !strings.Contains(lines[2], "2 differ, 0 only in from, 0 only in to") {
		t.Fatalf("verify after a delete and an update: exit %d, want 1 and both named\n%s", code, text)
	}
	if code, text := runSluice(t, "verify", "--from", src.URL, "--to", "postgres://postgres@127.0.0.1:1/none?connect_timeout=2"); code != 2 {
		t.Fatalf("verify against nothing: exit %d, want 2\n%s", code, text)
	}
}

func countOrZeroIn(t *testing.T, db pgtest.DB, sql string) int64 {
	t.Helper()
	var n int64
	db.Query(t, "public", func(conn *pgx.Conn) error {
		err := conn.QueryRow(context.Background(), sql).Scan(&n)
		if err != nil && strings.Contains(err.Error(), "does not exist") {
			return nil
		}
		return err
	})
	return n
}

func TestBackfillAndVerifyUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"backfill", "--to", "postgres://x/y"}, "--from: required"},
		{[]string{"backfill", "--from", "old", "--to", "postgres://x/y", "--config", "/nonexistent.yaml"}, "/nonexistent.yaml"},
		{[]string{"backfill", "--from", "postgres://x/y", "--to", "postgres://x/z", "--since", "yesterday"}, `--since: "yesterday" is neither`},
		{[]string{"backfill", "--from", "postgres://x/y", "--to", "postgres://x/z", "--chunk", "0"}, "chunk: 0 is outside 1..1000000"},
		{[]string{"verify", "--from", "postgres://x/y", "--to", "postgres://x/z", "--by", "week"}, `by: "week" is not hour or day`},
	} {
		code, text := runSluice(t, c.args...)
		if code != 2 || !strings.Contains(text, c.want) {
			t.Errorf("sluice %s: exit %d, output %q; want 2 and %q", strings.Join(c.args, " "), code, text, c.want)
		}
	}
}
