package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Bounds of group commit.
const (
	// maxGroup is the most publishes stored as one group.
	maxGroup = 1024
	// groupQueue bounds the publishes waiting for the next group; a publisher finding it full
	// waits (bounded by the publish timeout), so a stalled buffer pushes back on MQTT clients.
	groupQueue = 4096
)

// groupCommit stores the QoS 1/2 publishes that arrive together on all connections as one
// group: one goroutine takes every waiting publish (up to maxGroup), sends them to JetStream
// back to back, waits for their acknowledgements, makes them durable with one fsync when
// fsync is on, and only then releases each waiting publisher. No timer: a group is whatever
// arrived while the previous group was being stored, so a lone publish is stored at once and
// concurrent ones share the cost of the round trip and of the fsync.
type groupCommit struct {
	js      jetstream.JetStream
	sync    *blockSyncer // nil when Sluice does not fsync (fsync off, or an external server)
	timeout time.Duration
	queue   chan *pendingPub
	quit    chan struct{}
	done    chan struct{}
	m       *groupMetrics
	once    sync.Once
}

// pendingPub is one publish waiting for its group.
type pendingPub struct {
	msg  *nats.Msg
	err  error
	done chan struct{}
}

func newGroupCommit(js jetstream.JetStream, syncer *blockSyncer, timeout time.Duration, m *groupMetrics) *groupCommit {
	g := &groupCommit{js: js, sync: syncer, timeout: timeout, m: m,
		queue: make(chan *pendingPub, groupQueue), quit: make(chan struct{}), done: make(chan struct{})}
	m.queued.Set(0)
	go g.run()
	return g
}

// store returns once msg is stored (and synced when fsync is on) or failed to be. It needs no
// timer of its own: the committer fails a group whose acknowledgements do not arrive within
// the publish timeout, and a full queue drains as the committer works.
func (g *groupCommit) store(ctx context.Context, msg *nats.Msg) error {
	p := &pendingPub{msg: msg, done: make(chan struct{})}
	select {
	case <-g.quit:
		return nats.ErrConnectionClosed
	default:
	}
	select {
	case g.queue <- p:
	case <-g.quit:
		return nats.ErrConnectionClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-p.done:
		return p.err
	case <-g.done: // the committer stopped; p may have been queued after it drained the queue
		select {
		case <-p.done:
			return p.err
		default:
			return nats.ErrConnectionClosed
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *groupCommit) run() {
	defer close(g.done)
	group := make([]*pendingPub, 0, maxGroup)
	futures := make([]jetstream.PubAckFuture, 0, maxGroup)
	for {
		select {
		case p := <-g.queue:
			group = append(group[:0], p)
		case <-g.quit:
			g.failQueued()
			return
		}
	fill:
		for len(group) < maxGroup {
			select {
			case p := <-g.queue:
				group = append(group, p)
			default:
				break fill
			}
		}
		g.m.queued.Set(float64(len(g.queue)))
		g.commit(group, futures[:0])
		for i := range group {
			close(group[i].done)
			group[i] = nil
		}
	}
}

// commit stores one group: every message sent before the first acknowledgement is awaited.
func (g *groupCommit) commit(group []*pendingPub, futures []jetstream.PubAckFuture) {
	start := time.Now()
	for _, p := range group {
		f, err := g.js.PublishMsgAsync(p.msg)
		p.err = err
		futures = append(futures, f)
	}
	deadline := time.NewTimer(g.timeout)
	defer deadline.Stop()
	stored := 0
wait:
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
			stored++
		case err := <-f.Err():
			group[i].err = err
		case <-deadline.C:
			for _, p := range group[i:] {
				if p.err == nil {
					p.err = context.DeadlineExceeded
				}
			}
			break wait
		}
	}
	// Every publish still without an error was acknowledged: with fsync none is released
	// before the sync.
	if g.sync != nil && stored > 0 {
		syncStart := time.Now()
		if err := g.sync.sync(); err != nil {
			err = fmt.Errorf("fsync: %w", err)
			for _, p := range group {
				if p.err == nil {
					p.err = err
				}
			}
		}
		g.m.fsyncSeconds.Observe(time.Since(syncStart).Seconds())
	}
	g.m.groupMessages.Observe(float64(len(group)))
	g.m.groupSeconds.Observe(time.Since(start).Seconds())
}

// failQueued releases every publish still queued when the buffer closes.
func (g *groupCommit) failQueued() {
	for {
		select {
		case p := <-g.queue:
			p.err = nats.ErrConnectionClosed
			close(p.done)
		default:
			return
		}
	}
}

// close stops the committer after the group in hand; queued publishes fail. Idempotent.
func (g *groupCommit) close() {
	g.once.Do(func() { close(g.quit) })
	<-g.done
}

// blockSyncer makes what the embedded server has written durable: it fsyncs the stream's
// newest message block (and any block created since the last call, and the directory that
// holds them). With the server's flush-in-place file store (every single-replica stream), a
// message is written to its block before it is acknowledged, so syncing the block after the
// acknowledgements of a group makes the whole group durable with one fsync, instead of one
// per message as the server's sync_always would.
type blockSyncer struct {
	dir  string // <store_dir>/jetstream/$G/streams/<stream>/msgs
	idx  int    // index of the block f is open on
	f    *os.File
	dirF *os.File
}

func newBlockSyncer(storeDir, stream string) *blockSyncer {
	return &blockSyncer{dir: filepath.Join(storeDir, "jetstream", "$G", "streams", stream, "msgs")}
}

func (s *blockSyncer) sync() error {
	last, err := s.lastBlock()
	if err != nil {
		return err
	}
	if last == 0 {
		return errors.New("no message block in " + s.dir)
	}
	if last != s.idx {
		// A block was created since the last sync: sync the blocks written since, and the
		// directory so that the new files survive a power cut.
		if s.f != nil {
			if err := s.f.Sync(); err != nil {
				return err
			}
			s.f.Close()
			s.f = nil
		}
		for i := s.idx + 1; s.idx > 0 && i < last; i++ {
			if f, err := os.Open(filepath.Join(s.dir, strconv.Itoa(i)+".blk")); err == nil {
				err = f.Sync()
				f.Close()
				if err != nil {
					return err
				}
			}
		}
		f, err := os.Open(filepath.Join(s.dir, strconv.Itoa(last)+".blk"))
		if err != nil {
			return err
		}
		s.f, s.idx = f, last
		if s.dirF == nil {
			if s.dirF, err = os.Open(s.dir); err != nil {
				return err
			}
		}
		if err := s.dirF.Sync(); err != nil {
			return err
		}
	}
	return s.f.Sync()
}

// lastBlock returns the index of the newest message block (0 when there is none).
func (s *blockSyncer) lastBlock() (int, error) {
	if s.dirF == nil {
		d, err := os.Open(s.dir)
		if err != nil {
			return 0, err
		}
		s.dirF = d
	}
	if _, err := s.dirF.Seek(0, io.SeekStart); err != nil { // read the directory afresh
		return 0, err
	}
	names, err := s.dirF.Readdirnames(-1)
	if err != nil {
		return 0, err
	}
	last := 0
	for _, n := range names {
		if num, ok := strings.CutSuffix(n, ".blk"); ok {
			if i, err := strconv.Atoi(num); err == nil && i > last {
				last = i
			}
		}
	}
	return last, nil
}

func (s *blockSyncer) close() {
	if s.f != nil {
		s.f.Close()
	}
	if s.dirF != nil {
		s.dirF.Close()
	}
}

type groupMetrics struct {
	groupMessages prometheus.Histogram
	groupSeconds  prometheus.Histogram
	fsyncSeconds  prometheus.Histogram
	queued        prometheus.Gauge
}

func newGroupMetrics(reg prometheus.Registerer) *groupMetrics {
	m := &groupMetrics{
		groupMessages: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_buffer_group_messages",
			Help:    "QoS 1/2 publishes stored together as one group (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		groupSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_buffer_group_seconds",
			Help:    "Time to store one group: publish, acknowledgements and fsync.",
			Buckets: prometheus.ExponentialBuckets(25e-6, 2, 14),
		}),
		fsyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_buffer_fsync_seconds",
			Help:    "Time of the one fsync that makes a group durable (nats.fsync).",
			Buckets: prometheus.ExponentialBuckets(25e-6, 2, 14),
		}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_buffer_group_queue_messages",
			Help: "Publishes waiting for the next group (bounded by 4096).",
		}),
	}
	reg.MustRegister(m.groupMessages, m.groupSeconds, m.fsyncSeconds, m.queued)
	return m
}
