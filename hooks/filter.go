package hooks

import (
	"math"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-iot/sluice"
)

// Filter is store-on-change: it decides, per reading, whether the value changed enough since
// the last kept value of its series (or the series' heartbeat passed) to be stored. It is safe
// for concurrent use.
//
// A decision takes two steps so that a value is only remembered once it is stored: Apply
// moves the readings to suppress from Uplink.Readings to Uplink.Suppressed, and Commit, called
// after the uplink was stored, remembers the kept values. An uplink that could not be stored
// changes nothing, so its resend is judged afresh.
type Filter struct {
	rules  *rules
	series *seriesSet
	m      *filterMetrics

	commits      atomic.Uint64 // uplinks committed, to skip snapshots of an unchanged state
	savedCommits atomic.Uint64
	savedOnce    atomic.Bool
	block        []byte // SaveState's encoding buffer, reused
}

// NewFilter builds store-on-change from a validated configuration.
func NewFilter(cfg FilterConfig, reg prometheus.Registerer) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := &Filter{rules: compileRules(cfg), series: newSeriesSet(cfg.MaxSeries)}
	f.m = newFilterMetrics(reg, cfg.MaxSeries, f.series.len)
	return f, nil
}

// Filter results, the label values of sluice_filter_readings_total.
const (
	keptChanged   = "changed"    // outside the deadband
	keptHeartbeat = "heartbeat"  // inside the deadband, but the heartbeat passed
	keptFirst     = "first"      // no kept value remembered for the series
	keptOff       = "unfiltered" // no rule applies to the series
	suppressed    = "suppressed" // inside the deadband
)

// Apply filters u's readings in place: kept readings stay in u.Readings, suppressed ones go to
// u.Suppressed, both in their original order. It uses u.Tenant, u.Device and u.Decoder (the
// template) to find each series' rule, and u.Data to recognize booleans. When u.Suppressed is
// empty the two share u.Readings' array (Readings' capacity ends where Suppressed begins), so
// filtering allocates nothing.
func (f *Filter) Apply(u *sluice.Uplink) {
	var buf [160]byte
	var counts [5]int
	var spill [8]sluice.Reading
	supp := spill[:0]
	rs := u.Readings
	kept := rs[:0]
	for _, r := range rs {
		key := seriesKey(buf[:0], u.Tenant, u.Device, r.Metric)
		result := f.decide(key, u, &r)
		switch result {
		case suppressed:
			counts[4]++
			supp = append(supp, r)
			continue
		case keptChanged:
			counts[0]++
		case keptHeartbeat:
			counts[1]++
		case keptFirst:
			counts[2]++
		case keptOff:
			counts[3]++
		}
		kept = append(kept, r)
	}
	for i, n := range counts {
		if n > 0 {
			f.m.readings[i].Add(float64(n))
		}
	}
	if len(supp) == 0 {
		return
	}
	k := len(kept)
	if len(u.Suppressed) == 0 {
		copy(rs[k:], supp)
		u.Readings, u.Suppressed = rs[:k:k], rs[k:]
		return
	}
	u.Suppressed = append(u.Suppressed, supp...)
	clear(rs[k:]) // drop references held past the new length
	u.Readings = rs[:k]
}

func (f *Filter) decide(key []byte, u *sluice.Uplink, r *sluice.Reading) string {
	sh := f.series.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.get(key)
	if e == nil {
		ru := f.rules.resolve(u.Tenant, u.Device, u.Decoder, r.Metric)
		if ru == offRule {
			return keptOff
		}
		var evicted bool
		if e, evicted = sh.add(key); evicted {
			f.m.evictions.Inc()
		}
		e.rule = ru
	}
	if e.rule == nil { // loaded from a snapshot: the rule comes from today's configuration
		e.rule = f.rules.resolve(u.Tenant, u.Device, u.Decoder, r.Metric)
	}
	ru := e.rule
	if ru == offRule {
		return keptOff
	}
	if !e.kept {
		return keptFirst
	}
	switch r.Type {
	case sluice.TypeText:
		if math.Float64bits(stateOf(r)) != math.Float64bits(e.last) {
			return keptChanged
		}
	case sluice.TypeLocation:
		if r.Location == nil || distance(stateOf(r), e.last) > ru.distance {
			return keptChanged
		}
	default:
		v := r.Value
		delta := math.Abs(v - e.last)
		if delta > max(ru.absolute, ru.relative*math.Abs(e.last)) || v != v {
			return keptChanged
		}
		if delta > 0 && (ru.discrete || r.Type == sluice.TypeBool || isBool(u.Data, r.Metric)) {
			return keptChanged
		}
	}
	// A reading time before the last kept one by more than a heartbeat means the device's
	// clock was reset (or was wrong before): keep, so a bad timestamp cannot delay heartbeats.
	if since := r.Time.UnixNano() - e.at; since >= ru.heartbeat || since <= -ru.heartbeat {
		return keptHeartbeat
	}
	return suppressed
}

// Commit remembers u.Readings as the last kept values of their series. Call it once u is
// stored; replaying stored uplinks through Commit rebuilds the state.
func (f *Filter) Commit(u *sluice.Uplink) {
	f.commits.Add(1)
	var buf [160]byte
	for i := range u.Readings {
		r := &u.Readings[i]
		key := seriesKey(buf[:0], u.Tenant, u.Device, r.Metric)
		sh := f.series.shard(key)
		sh.mu.Lock()
		e := sh.peek(key) // Apply has just made it the most recently used
		if e == nil {
			if ru := f.rules.resolve(u.Tenant, u.Device, u.Decoder, r.Metric); ru != offRule {
				var evicted bool
				if e, evicted = sh.add(key); evicted {
					f.m.evictions.Inc()
				}
				e.rule = ru
			}
		}
		if e != nil && e.rule != offRule {
			e.last, e.at, e.kept = stateOf(r), r.Time.UnixNano(), true
		}
		sh.mu.Unlock()
	}
}

// isBool reports whether metric (a Flatten path: "a.b", "list.0") is a boolean in data.
func isBool(data map[string]any, metric string) bool {
	if v, ok := data[metric]; ok { // a key that itself holds dots
		_, ok = v.(bool)
		return ok
	}
	var v any = data
	for rest := metric; ; {
		var part string
		var more bool
		part, rest, more = strings.Cut(rest, ".")
		switch x := v.(type) {
		case map[string]any:
			v = x[part]
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(x) {
				return false
			}
			v = x[i]
		default:
			return false
		}
		if !more {
			_, ok := v.(bool)
			return ok
		}
	}
}
