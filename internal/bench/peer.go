package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PeerTelegraf is the peer stack Mosquitto → Telegraf (inputs.mqtt_consumer, JSON parser) →
// PostgreSQL (outputs.postgresql).
const PeerTelegraf = "telegraf"

// The peer's fairness knobs, chosen so that neither Mosquitto nor Telegraf drops or stalls
// messages: Mosquitto keeps every QoS 1 message in memory however far Telegraf lags, and
// Telegraf reads more messages ahead than one batch holds, so a batch fills without waiting
// for the flush interval.
const (
	telegrafBatch       = 5000      // agent.metric_batch_size
	telegrafBuffer      = 1_000_000 // agent.metric_buffer_limit
	telegrafUndelivered = 20_000    // inputs.mqtt_consumer.max_undelivered_messages
	telegrafFlush       = time.Second
	mosquittoInflight   = 1000 // max_inflight_messages toward Telegraf
	peerTable           = "mqtt_consumer"
	warmupTopic         = "sensors/bench-warmup/up"
)

// mosquittoConfig listens on addr only, keeps nothing on disk and queues without limit.
func mosquittoConfig(port string) string {
	return "listener " + port + " 127.0.0.1\n" +
		"allow_anonymous true\n" +
		"persistence false\n" +
		"max_inflight_messages " + strconv.Itoa(mosquittoInflight) + "\n" +
		"max_queued_messages 0\n" + // no limit: a full queue drops QoS 1 messages
		"max_queued_bytes 0\n" +
		"set_tcp_nodelay true\n" + // as Go's sockets (Sluice, the generator) are
		"log_dest stderr\nlog_type error\nlog_type warning\n"
}

// telegrafConfig subscribes to the generator's JSON topic and writes a row per message into
// schema.mqtt_consumer; debug logging reports every batch written.
func telegrafConfig(broker, dbURL, schema string) string {
	return fmt.Sprintf(`[agent]
  interval = "1s"
  flush_interval = %q
  flush_jitter = "0s"
  metric_batch_size = %d
  metric_buffer_limit = %d
  omit_hostname = true
  debug = true

[[inputs.mqtt_consumer]]
  servers = ["tcp://%s"]
  topics = ["sensors/+/up"]
  qos = 1
  persistent_session = false
  topic_tag = "topic"
  max_undelivered_messages = %d
  data_format = "json"
  json_time_key = "time"
  json_time_format = "2006-01-02T15:04:05.999999999Z07:00"

[[outputs.postgresql]]
  connection = %q
  schema = %q
`, telegrafFlush.String(), telegrafBatch, telegrafBuffer, broker, telegrafUndelivered, dbURL, schema)
}

// process is a peer process with its output in a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// stop asks the process to stop (SIGTERM) and waits; idempotent.
func (p *process) stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
	return p.err
}

func (p *process) logTail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// peerStack is Mosquitto and Telegraf started for one run, in a temporary directory.
type peerStack struct {
	dir                 string
	broker              string
	mosquitto, telegraf *process
	connected           chan struct{} // closed when Telegraf has connected to Mosquitto
}

// startPeer starts Mosquitto on a free port and Telegraf writing into schema (which it
// creates), and warms Telegraf up until it has written a batch (its table exists). Every batch
// Telegraf logs as written is recorded on w as committed rows.
func startPeer(ctx context.Context, cfg Config, schema string, w *watcher) (*peerStack, error) {
	dir, err := os.MkdirTemp("", "sluice-bench-peer-")
	if err != nil {
		return nil, err
	}
	s := &peerStack{dir: dir, connected: make(chan struct{})}
	fail := func(err error) (*peerStack, error) { s.stop(); return nil, err }
	if _, err := w.db.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return fail(fmt.Errorf("create schema %s: %w", schema, err))
	}
	if s.broker, err = freeAddr(); err != nil {
		return fail(err)
	}
	_, port, _ := net.SplitHostPort(s.broker)
	mconf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(mconf, []byte(mosquittoConfig(port)), 0o644); err != nil {
		return fail(err)
	}
	if s.mosquitto, err = s.start("mosquitto", cfg.Mosquitto, nil, "-c", mconf); err != nil {
		return fail(err)
	}
	if err := waitListening(ctx, s.broker, s.mosquitto, 10*time.Second); err != nil {
		return fail(fmt.Errorf("mosquitto: %w\n%s", err, s.mosquitto.logTail(20)))
	}
	tconf := filepath.Join(dir, "telegraf.conf")
	if err := os.WriteFile(tconf, []byte(telegrafConfig(s.broker, cfg.DatabaseURL, schema)), 0o600); err != nil {
		return fail(err)
	}
	if s.telegraf, err = s.start("telegraf", cfg.Telegraf, w.record, "--config", tconf); err != nil {
		return fail(err)
	}
	if err := s.warmUp(ctx, w); err != nil {
		return fail(fmt.Errorf("telegraf: %w\n%s", err, s.telegraf.logTail(20)))
	}
	return s, nil
}

// start starts bin with args, its output going to <dir>/<name>.log. With onWrite, every
// "Wrote batch of N metrics" line is recorded as a sample of the rows written so far, timed
// when the line was read.
func (s *peerStack) start(name, bin string, onWrite func(sample), args ...string) (*process, error) {
	p := &process{name: name, logPath: filepath.Join(s.dir, name+".log"), exited: make(chan struct{})}
	logf, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	r, wr, err := os.Pipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = wr, wr
	err = p.cmd.Start()
	wr.Close()
	if err != nil {
		r.Close()
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	var reading sync.WaitGroup
	reading.Add(1)
	go func() {
		defer reading.Done()
		defer logf.Close()
		defer r.Close()
		s.readLog(r, logf, onWrite)
	}()
	go func() { p.err = p.cmd.Wait(); reading.Wait(); close(p.exited) }()
	return p, nil
}

func (s *peerStack) readLog(r *os.File, logf *os.File, onWrite func(sample)) {
	const wrote = "Wrote batch of "
	var total int64
	once := sync.Once{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		at, line := time.Now(), sc.Text()
		logf.WriteString(line + "\n")
		if onWrite == nil {
			continue
		}
		if i := strings.Index(line, wrote); i >= 0 {
			n, _ := strconv.ParseInt(strings.Fields(line[i+len(wrote):] + " ")[0], 10, 64)
			total += n
			onWrite(sample{at, total})
		} else if strings.Contains(line, "] Connected [") {
			once.Do(func() { close(s.connected) })
		}
	}
}

// warmUp publishes to warmupTopic until Telegraf has written a batch, then waits one flush
// interval more so that no warm-up message is written during the load. The warm-up rows are
// left out of the final count.
func (s *peerStack) warmUp(ctx context.Context, w *watcher) error {
	select {
	case <-s.connected:
	case <-s.telegraf.exited:
		return fmt.Errorf("exited: %v", s.telegraf.err)
	case <-time.After(30 * time.Second):
		return fmt.Errorf("not connected to mosquitto after 30s")
	case <-ctx.Done():
		return ctx.Err()
	}
	p, err := dialPublisher(s.broker, fmt.Sprintf("sluice-bench-%d-warmup", os.Getpid()), 1, 16)
	if err != nil {
		return err
	}
	defer p.close()
	kind, _ := kindOf(PayloadJSON)
	var payload, scratch []byte
	for seq := uint64(0); ; seq++ {
		if _, ok := w.lastSample(); ok {
			break
		}
		if seq > 300 {
			return fmt.Errorf("no batch written after %d warm-up messages", seq)
		}
		payload = kind.appendPayload(payload[:0], 0, seq, time.Now())
		if scratch, err = p.publish(warmupTopic, payload, scratch); err != nil {
			return err
		}
		if err := p.flush(); err != nil {
			return err
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-s.telegraf.exited:
			return fmt.Errorf("exited: %v", s.telegraf.err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case <-time.After(telegrafFlush + 500*time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// procs are the stack's processes whose CPU and RSS are the peer's.
func (s *peerStack) procs() []proc {
	return []proc{{"telegraf", s.telegraf.pid()}, {"mosquitto", s.mosquitto.pid()}}
}

// count is the rows the load put into the table (the warm-up's left out).
func (s *peerStack) count(ctx context.Context, w *watcher) (int64, error) {
	var n int64
	err := w.db.QueryRow(ctx, "SELECT count(*) FROM "+peerTable+" WHERE topic <> $1", warmupTopic).Scan(&n)
	return n, err
}

// stop stops Telegraf (which flushes what it holds), then Mosquitto, and removes the directory.
func (s *peerStack) stop() error {
	var first error
	for _, p := range []*process{s.telegraf, s.mosquitto} {
		if p == nil {
			continue
		}
		if err := p.stop(); err != nil && first == nil {
			first = fmt.Errorf("%s: %w\n%s", p.name, err, p.logTail(10))
		}
	}
	os.RemoveAll(s.dir)
	return first
}

// waitListening waits until addr accepts TCP connections.
func waitListening(ctx context.Context, addr string, p *process, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited: %v", p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not listening after %v", addr, timeout)
}
