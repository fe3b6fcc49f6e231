package hooks

import (
	"container/list"
	"strconv"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Limit reasons, the label values of sluice_limit_messages_total.
const (
	LimitDevice     = "device"
	LimitConnection = "connection"
)

// Limiter is flood protection: a token bucket per MQTT connection (client id) and one per
// device. It is safe for concurrent use.
type Limiter struct {
	cfg     LimitConfig
	now     func() time.Time
	conns   *buckets
	devices *buckets
	warn    zerolog.Logger
	m       *limitMetrics
}

// NewLimiter builds flood protection from a validated configuration. now is the clock the
// buckets refill by (time.Now in production).
func NewLimiter(cfg LimitConfig, now func() time.Time, log zerolog.Logger, reg prometheus.Registerer) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Limiter{
		cfg: cfg, now: now,
		conns:   newBuckets(cfg.MaxBuckets),
		devices: newBuckets(cfg.MaxBuckets),
		warn:    log.With().Str("component", "limit").Logger().Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second}),
	}
	l.m = newLimitMetrics(reg, l.conns, l.devices)
	return l, nil
}

// Allow takes one token from the connection's bucket and one from the device's, and returns
// "" when both had one. Otherwise it takes none and returns the reason: LimitConnection or
// LimitDevice. An empty device (a route that does not name it) has no device bucket.
func (l *Limiter) Allow(client, tenant, device string) string {
	now := l.now().UnixNano()
	var buf [128]byte
	if l.cfg.Connection.Rate > 0 {
		key := append(buf[:0], client...)
		if !l.conns.take(key, now, l.connRate, l.m.evictions[0]) {
			return LimitConnection
		}
	}
	if device == "" {
		return "" // the route does not name the device: its connection bucket bounds it
	}
	key := append(append(append(buf[:0], tenant...), 0), device...)
	rate := func() bucketRate { return l.cfg.deviceRate(tenant, device) }
	if !l.devices.take(key, now, rate, l.m.evictions[1]) {
		if l.cfg.Connection.Rate > 0 {
			l.conns.refund(append(buf[:0], client...))
		}
		return LimitDevice
	}
	return ""
}

func (l *Limiter) connRate() bucketRate {
	return newBucketRate(l.cfg.Connection.Rate, l.cfg.Connection.Burst)
}

// Refuse counts a limited publish and returns the answer for the broker. QoS 0 publishes are
// dropped: not stored, not forwarded to subscribers. A QoS 1 publish from an MQTT 5 client
// gets a PUBACK with reason 0x96 "message rate too high", a QoS 2 one a PUBREC with it. MQTT
// 3.1.1 has no negative acknowledgement: the publish gets none at all, so the client keeps it
// and resends it when it reconnects (and a client that bounds its in-flight messages slows
// down to the allowed rate).
func (l *Limiter) Refuse(cl *mqtt.Client, pk packets.Packet, reason, tenant, device string) error {
	qos := pk.FixedHeader.Qos
	l.m.limited.WithLabelValues(reason, strconv.Itoa(int(qos))).Inc()
	l.warn.Warn().Str("reason", reason).Str("client", cl.ID).Str("tenant", tenant).Str("device", device).
		Uint8("qos", qos).Msg("publish over the rate limit refused")
	return refusal(cl, qos, pk.PacketID, packets.ErrMessageRateTooHigh)
}

// buckets is an LRU-bounded set of token buckets.
type buckets struct {
	mu    sync.Mutex
	max   int
	index map[string]*list.Element
	lru   list.List // of *bucket, most recently used first
}

type bucket struct {
	key    string
	rate   bucketRate
	tokens float64
	at     int64 // unix nanoseconds of the last refill
}

func newBuckets(max int) *buckets {
	return &buckets{max: max, index: map[string]*list.Element{}}
}

// take refills key's bucket up to now and takes a token; rate is called when the bucket is
// new. It reports false, taking nothing, when the bucket is empty.
func (bs *buckets) take(key []byte, now int64, rate func() bucketRate, evictions prometheus.Counter) bool {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	var b *bucket
	if el, ok := bs.index[string(key)]; ok {
		bs.lru.MoveToFront(el)
		b = el.Value.(*bucket)
	} else {
		r := rate()
		if r.rate == 0 {
			return true // unlimited: nothing to remember
		}
		if bs.lru.Len() >= bs.max {
			old := bs.lru.Remove(bs.lru.Back()).(*bucket)
			delete(bs.index, old.key)
			evictions.Inc()
		}
		b = &bucket{key: string(key), rate: r, tokens: r.burst, at: now}
		bs.index[b.key] = bs.lru.PushFront(b)
	}
	if now > b.at {
		b.tokens = min(b.burst(), b.tokens+float64(now-b.at)*b.rate.rate)
		b.at = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (b *bucket) burst() float64 { return b.rate.burst }

// refund gives back the token take just took from key.
func (bs *buckets) refund(key []byte) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if el, ok := bs.index[string(key)]; ok {
		b := el.Value.(*bucket)
		b.tokens = min(b.burst(), b.tokens+1)
	}
}

func (bs *buckets) len() int {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return bs.lru.Len()
}

// checkLimits returns the broker's answer to a routed publish over a rate limit, nil otherwise.
// The device bucket applies when the route names the device (an envelope route without
// {device} is bounded by its connection only).
func (h *Ingest) checkLimits(cl *mqtt.Client, pk packets.Packet, m Match) error {
	if h.limiter == nil {
		return nil
	}
	if reason := h.limiter.Allow(cl.ID, m.Tenant, m.Device); reason != "" {
		return h.limiter.Refuse(cl, pk, reason, m.Tenant, m.Device)
	}
	return nil
}
