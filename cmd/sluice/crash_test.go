package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-iot/sluice/internal/pgtest"
)

// buildSluice compiles the command once per test binary run.
var buildSluice = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "sluice-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "sluice")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v: %s", err, out)
	}
	return bin, nil
})

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

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

func writeConfig(t *testing.T, dir, mqttAddr, schema string) string {
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
`, filepath.Join(dir, "data"), mqttAddr, pgtest.URL(), schema)
	path := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// SIGKILL in the middle of a QoS 1 stream, then a restart on the same data dir: every message
// that was acknowledged is in the database exactly once.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	bin, err := buildSluice()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	schema := pgtest.Schema(t)
	addr := freeAddr(t)
	config := writeConfig(t, dir, addr, schema)

	first := startChild(t, bin, config)
	waitListening(t, addr)

	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("crash").SetAutoReconnect(false))
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	var acked []int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // publish until the connection dies; remember what was acknowledged
		defer wg.Done()
		for i := 1; i <= 100_000; i++ {
			tok := cl.Publish("sensors/crash/up", 1, false, fmt.Sprintf(`{"seq":%d,"time":%d}`, i, 1_700_000_000_000+int64(i)))
			if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil || !cl.IsConnectionOpen() {
				return
			}
			acked = append(acked, i)
		}
	}()
	time.Sleep(1500 * time.Millisecond)
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.cmd.Wait()
	wg.Wait()
	cl.Disconnect(0)
	if len(acked) < 100 {
		t.Fatalf("only %d messages acknowledged before the kill; the stream did not run", len(acked))
	}

	second := startChild(t, bin, config)
	waitListening(t, addr)
	want := int64(len(acked))
	var n int64
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if n = countOrZero(t, schema, "SELECT count(*) FROM readings WHERE metric = 'seq' AND value <= $1", want); n >= want {
			break
		}
	}
	t.Logf("%d messages acknowledged before SIGKILL; %d of them stored after restart", want, n)
	if n != want {
		t.Fatalf("acknowledged readings in the database: got %d, want %d", n, want)
	}
	if d := pgtest.Count(t, schema, "SELECT count(*) - count(DISTINCT value) FROM readings WHERE metric = 'seq'"); d != 0 {
		t.Fatalf("%d duplicate readings", d)
	}
	second.cmd.Process.Signal(syscall.SIGTERM)
	if err := second.cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v (want exit 0)", err)
	}
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
