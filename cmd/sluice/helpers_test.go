package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/internal/proctest"
)

// sluiceBin is the compiled command; the test fails when it does not build.
func sluiceBin(t *testing.T) string { t.Helper(); return proctest.Sluice(t) }

// child is a `sluice run` process.
type child struct {
	cmd *exec.Cmd
	log *os.File
}

func startChild(t *testing.T, bin, config string) *child {
	t.Helper()
	log, err := os.CreateTemp(t.TempDir(), "sluice-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", config)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, log: log}
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("sluice log:\n%s", b)
		}
	})
	return c
}

// kill sends SIGKILL and waits for the process to end.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.cmd.Wait()
}

// stop sends SIGTERM; the test fails unless the process exits 0.
func (c *child) stop(t *testing.T) {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v (want exit 0)", err)
	}
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("nothing listens on %s after 30s", addr)
}

// writeConfig writes dir/sluice.yaml: MQTT on mqttAddr, the quick-start route, one target
// writing to schema, data in dir/data; extra is appended as more top-level YAML.
func writeConfig(t *testing.T, dir, mqttAddr, schema, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`
data_dir: %s
log: {level: info, format: json}
http: {address: ""}
mqtt:
  listeners: [{type: tcp, address: "%s"}]
routes:
  - {topic: "sensors/{device}/up", decoder: json, tenant: default}
sink:
  targets:
    - {name: main, database_url: "%s", schema: %s, batch_wait: 20ms, retry_max: 500ms}
`, filepath.Join(dir, "data"), mqttAddr, pgtest.URL(), schema) + extra
	path := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// countOrZero counts, treating a schema not yet migrated as zero rows.
func countOrZero(t *testing.T, schema, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	pgtest.Query(t, schema, func(conn *pgx.Conn) error {
		err := conn.QueryRow(t.Context(), sql, args...).Scan(&n)
		if err != nil && strings.Contains(err.Error(), "does not exist") {
			return nil
		}
		return err
	})
	return n
}
