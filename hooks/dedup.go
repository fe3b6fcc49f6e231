package hooks

import (
	"container/list"
	"errors"
	"hash/fnv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DedupConfig bounds the multi-gateway / multi-server de-duplication of LoRaWAN uplinks.
type DedupConfig struct {
	// Window is how long an uplink (device, fCnt, fPort, payload) is remembered: a copy
	// arriving within it is counted and not stored again. 0 disables de-duplication.
	Window time.Duration `yaml:"window"`
	// MaxEntries bounds the uplinks remembered; beyond it the oldest are forgotten early.
	MaxEntries int `yaml:"max_entries"`
}

// DefaultDedupConfig remembers uplinks for a minute, at most 100,000 of them (about 10 MB).
func DefaultDedupConfig() DedupConfig { return DedupConfig{Window: time.Minute, MaxEntries: 100000} }

// Validate reports every problem of c.
func (c DedupConfig) Validate() error {
	var errs []error
	if c.Window < 0 || c.Window > 24*time.Hour {
		errs = append(errs, errors.New("window: must be between 0 and 24h"))
	}
	if c.MaxEntries < 1 || c.MaxEntries > 10_000_000 {
		errs = append(errs, errors.New("max_entries: must be between 1 and 10000000"))
	}
	return errors.Join(errs...)
}

// Dedup remembers the LoRaWAN uplinks stored recently, so that the copies of one uplink heard by
// several gateways or forwarded by several network servers are stored once. An uplink is known
// by (device, fCnt, fPort, payload hash): a device whose frame counter was reset (re-join, ABP
// reboot) sends new payloads under old counters and is accepted; a join event forgets the
// device's uplinks altogether. Safe for concurrent use.
type Dedup struct {
	window time.Duration
	max    int
	now    func() time.Time

	mu      sync.Mutex
	entries map[dedupKey]*list.Element // of *dedupEntry
	order   *list.List                 // oldest first

	duplicates prometheus.Counter
	evicted    prometheus.Counter
}

type dedupKey struct {
	device string
	fcnt   uint32
	port   int
	sum    uint64
}

type dedupEntry struct {
	key dedupKey
	at  time.Time
}

// NewDedup builds a de-duplication window; it returns nil when cfg.Window is 0.
func NewDedup(cfg DedupConfig, reg prometheus.Registerer) (*Dedup, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Window == 0 {
		return nil, nil
	}
	d := &Dedup{
		window: cfg.Window, max: cfg.MaxEntries, now: time.Now,
		entries: map[dedupKey]*list.Element{}, order: list.New(),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_lorawan_duplicates_total",
			Help: "LoRaWAN uplink copies (more gateways, more network servers) not stored again.",
		}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_lorawan_dedup_evicted_total",
			Help: "Uplinks forgotten before their window ended because the window was full.",
		}),
	}
	entries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_lorawan_dedup_entries",
		Help: "Uplinks remembered by the de-duplication window (bounded by dedup.max_entries).",
	}, func() float64 { return float64(d.Len()) })
	reg.MustRegister(d.duplicates, d.evicted, entries)
	return d, nil
}

// dedupClaim is an uplink remembered by Claim, to Release if it could not be stored.
type dedupClaim struct {
	d   *Dedup
	key dedupKey
	el  *list.Element
}

// Claim remembers an uplink and returns dup true (and counts it) when it was already
// remembered within the window. The first caller gets a claim; it must Release it when the
// uplink was not stored, so that the resend is not taken for a duplicate.
func (d *Dedup) Claim(device string, fcnt uint32, port int, payload []byte) (c *dedupClaim, dup bool) {
	h := fnv.New64a()
	h.Write(payload)
	key := dedupKey{device: device, fcnt: fcnt, port: port, sum: h.Sum64()}
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire(now)
	if _, ok := d.entries[key]; ok {
		d.duplicates.Inc()
		return nil, true
	}
	for d.order.Len() >= d.max {
		d.remove(d.order.Front())
		d.evicted.Inc()
	}
	el := d.order.PushBack(&dedupEntry{key: key, at: now})
	d.entries[key] = el
	return &dedupClaim{d: d, key: key, el: el}, false
}

// Release forgets a claimed uplink.
func (c *dedupClaim) Release() {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	if el, ok := c.d.entries[c.key]; ok && el == c.el {
		c.d.remove(el)
	}
}

// Reset forgets every uplink of device: it (re)joined and counts its frames from 0 again.
func (d *Dedup) Reset(device string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for el := d.order.Front(); el != nil; {
		next := el.Next()
		if el.Value.(*dedupEntry).key.device == device {
			d.remove(el)
		}
		el = next
	}
}

// Len is the number of uplinks remembered.
func (d *Dedup) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.order.Len()
}

func (d *Dedup) expire(now time.Time) {
	for el := d.order.Front(); el != nil && now.Sub(el.Value.(*dedupEntry).at) >= d.window; el = d.order.Front() {
		d.remove(el)
	}
}

func (d *Dedup) remove(el *list.Element) {
	delete(d.entries, el.Value.(*dedupEntry).key)
	d.order.Remove(el)
}
