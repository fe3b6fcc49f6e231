package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is a `sluice run` process started for one benchmark: free ports, a temporary data
// directory, its own database schema. Running it as a separate process keeps its CPU time
// and peak RSS apart from the generator's.
type child struct {
	process
	dir      string
	mqttAddr string
	httpAddr string
}

// childConfig is the YAML configuration of the child: the defaults, except ports, data
// directory, database, schema, fsync and the benchmark's routes.
func childConfig(dir, mqttAddr, httpAddr, dbURL, schema string, fsync bool, templates string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir: %q\n", filepath.Join(dir, "data"))
	b.WriteString("log: {level: warn, format: json}\n")
	fmt.Fprintf(&b, "http: {address: %q}\n", httpAddr)
	fmt.Fprintf(&b, "mqtt:\n  listeners:\n    - {id: tcp, type: tcp, address: %q}\n", mqttAddr)
	fmt.Fprintf(&b, "nats: {fsync: %v}\n", fsync)
	if templates != "" {
		fmt.Fprintf(&b, "decoders: {templates_dir: %q}\n", templates)
	}
	b.WriteString("routes:\n")
	b.WriteString("  - {topic: \"sensors/{device}/up\", decoder: json, tenant: bench}\n")
	b.WriteString("  - {topic: \"lpp/{device}/up\", decoder: cayenne-lpp, tenant: bench}\n")
	if templates != "" {
		b.WriteString("  - {topic: \"application/+/device/+/event/up\", format: chirpstack, decoder: dragino/lht65, tenant: bench}\n")
	}
	fmt.Fprintf(&b, "sink:\n  targets:\n    - {name: main, database_url: %q, schema: %s}\n", dbURL, schema)
	return b.String()
}

// startChild writes the configuration and starts `<bin> run`, returning once /readyz says ready.
func startChild(ctx context.Context, bin string, dbURL, schema string, fsync bool, templates, profile string) (*child, error) {
	dir, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return nil, err
	}
	c := &child{dir: dir, process: process{name: "sluice", logPath: filepath.Join(dir, "sluice.log"), exited: make(chan struct{})}}
	if c.mqttAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	if c.httpAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "sluice.yaml")
	cfg := childConfig(dir, c.mqttAddr, c.httpAddr, dbURL, schema, fsync, templates)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(c.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	c.cmd = exec.Command(bin, "run", "--config", cfgPath)
	if profile != "" {
		if err := os.MkdirAll(profile, 0o750); err != nil {
			return nil, err
		}
		c.cmd = exec.Command(bin, "bench", "serve", "--cpuprofile", filepath.Join(profile, "cpu.pprof"),
			"--memprofile", filepath.Join(profile, "allocs.pprof"), "--config", cfgPath)
	}
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	// The configuration file says everything: no SLUICE_* override may change it.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") {
			c.cmd.Env = append(c.cmd.Env, kv)
		}
	}
	if err := c.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.exited) }()
	if err := c.waitReady(ctx, 60*time.Second); err != nil {
		tail := c.logTail(20)
		c.stop()
		return nil, fmt.Errorf("sluice did not become ready: %w\n%s", err, tail)
	}
	return c, nil
}

func (c *child) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			return fmt.Errorf("it exited: %v", c.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := client.Get("http://" + c.httpAddr + "/readyz")
		if err != nil {
			last = err.Error()
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = strings.TrimSpace(string(body))
		if strings.Contains(last, `"status":"ready"`) {
			return nil
		}
	}
	return fmt.Errorf("not ready after %v (last /readyz: %s)", timeout, last)
}

// stop asks the child to stop (SIGTERM), waits, and removes its directory.
func (c *child) stop() error {
	err := c.process.stop()
	os.RemoveAll(c.dir)
	return err
}

func (c *child) logTail(n int) string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// procStats is what the kernel accounts for a process.
type procStats struct {
	cpu    time.Duration // user + system
	hwmRSS int64         // peak resident set, bytes
}

// clockTick is the unit of /proc/<pid>/stat times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// readProc reads the CPU time and peak RSS of pid from /proc.
func readProc(pid int) (procStats, error) {
	var s procStats
	cpu, _, err := procParent(pid)
	if err != nil {
		return s, err
	}
	s.cpu = cpu
	st, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return s, err
	}
	defer st.Close()
	sc := bufio.NewScanner(st)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			s.hwmRSS = kb << 10
		}
	}
	return s, nil
}

// selfCPU is the generator's own CPU time (every thread of this process).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
