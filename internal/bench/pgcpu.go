package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgServer reads the CPU time of a PostgreSQL server on this machine from /proc: the
// postmaster and every process whose parent it is (backends, checkpointer, WAL writer,
// autovacuum). Processes that start and end between two readings (short-lived backends,
// autovacuum workers) are missed.
type pgServer struct {
	postmaster int
	app        string // application_name of the benchmark's own backends
}

// pgSnapshot is the CPU time of each server process at one instant.
type pgSnapshot map[int]time.Duration

// findPostgres finds the postmaster as the parent of one of db's own backends. It returns an
// error saying why when the server's CPU cannot be read: not on this machine, or not in
// this process namespace.
func findPostgres(ctx context.Context, db *pgxpool.Pool, dbURL, app string) (*pgServer, error) {
	cfg, err := pgconn.ParseConfig(dbURL)
	if err != nil {
		return nil, err
	}
	if !isLocalHost(cfg.Host) {
		return nil, fmt.Errorf("the database is on %s, not this machine", cfg.Host)
	}
	var backend int
	if err := db.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return nil, fmt.Errorf("find own backend: %w", err)
	}
	_, parent, err := procParent(backend)
	if err != nil {
		return nil, fmt.Errorf("backend %d is not visible in /proc (another namespace?): %w", backend, err)
	}
	if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(parent) + "/comm"); !strings.HasPrefix(string(comm), "postgres") &&
		!strings.HasPrefix(string(comm), "postmaster") {
		return nil, fmt.Errorf("the parent of backend %d is %q, not a postmaster", backend, strings.TrimSpace(string(comm)))
	}
	return &pgServer{postmaster: parent, app: app}, nil
}

func isLocalHost(host string) bool {
	if strings.HasPrefix(host, "/") || host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// snapshot reads the CPU time of the postmaster and its children.
func (s *pgServer) snapshot() pgSnapshot {
	out := pgSnapshot{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cpu, parent, err := procParent(pid)
		if err == nil && (pid == s.postmaster || parent == s.postmaster) {
			out[pid] = cpu
		}
	}
	return out
}

// own returns the pids of the benchmark's own backends (the watcher's pool).
func (s *pgServer) own(ctx context.Context, db *pgxpool.Pool) map[int]bool {
	out := map[int]bool{}
	rows, err := db.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", s.app)
	if err != nil {
		return out
	}
	pids, _ := pgx.CollectRows(rows, pgx.RowTo[int32])
	for _, p := range pids {
		out[int(p)] = true
	}
	return out
}

// pgCPU is the server's CPU time between two snapshots, apart from the benchmark's own
// backends. A process present only in the second snapshot started in between: all of its
// time counts.
type pgCPU struct {
	server, own time.Duration
	processes   int // server processes seen at the end
}

func cpuBetween(start, end pgSnapshot, own map[int]bool) pgCPU {
	var c pgCPU
	for pid, t := range end {
		d := t - start[pid]
		if own[pid] {
			c.own += d
			continue
		}
		c.server += d
		c.processes++
	}
	return c
}

// procParent reads the CPU time (user + system) and the parent pid of pid.
func procParent(pid int) (time.Duration, int, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return 0, 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, 0, errors.New("malformed /proc stat")
	}
	parent, _ := strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * clockTick, parent, nil
}

// loadAverage is the 1-minute load average from /proc/loadavg (-1 when unknown).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}
