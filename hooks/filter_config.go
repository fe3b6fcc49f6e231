package hooks

import (
	"errors"
	"fmt"
	"math"
	"path"
	"sort"
	"strings"
	"time"
)

// FilterConfig configures store-on-change (yaml `store_on_change:`). A reading is compared
// with the last value kept for its series (tenant, device, metric) and suppressed when the
// change is inside the series' deadband and its heartbeat has not passed. The deadband of a
// series comes from the most specific level that names it: a device entry, then the
// template (decoder) of the route, then the global metric patterns, then the global default.
// A series no level names is never filtered: nothing is suppressed by surprise.
type FilterConfig struct {
	// MaxSeries bounds the series whose last kept value is remembered; the least recently
	// seen one is forgotten when a new one arrives (its next reading is then kept).
	MaxSeries int `yaml:"max_series"`
	// SnapshotInterval is how often the state is written to <data_dir>/store-on-change.state
	// (it is also written on shutdown); after a crash the buffer's newer uplinks are replayed.
	SnapshotInterval time.Duration `yaml:"snapshot_interval"`
	// Default applies to every metric no other level names; nil leaves them unfiltered.
	Default *Deadband `yaml:"default"`
	// Metrics maps a metric name or pattern (path.Match syntax: *, ?, [a-z]) to its deadband.
	Metrics map[string]Deadband `yaml:"metrics"`
	// Templates maps a decoder name (a template is the decoder "<vendor>/<model>") to its
	// metrics' deadbands, by name or pattern.
	Templates map[string]map[string]Deadband `yaml:"templates"`
	// Devices are per-device overrides; the first entry matching tenant and device that names
	// the metric wins.
	Devices []DeviceDeadbands `yaml:"devices"`
}

// Deadband is the store-on-change rule of one series. A value is kept when it differs from the
// last kept value by more than max(Absolute, Relative × |last kept|), or when Heartbeat has
// passed since the last kept value (by reading time). Discrete values (booleans and texts, and
// every value when Discrete is set) are kept on any change. A location is kept when it moved
// more than Distance metres (great-circle distance) from the last kept one; 0 keeps any move.
type Deadband struct {
	Absolute  float64       `yaml:"absolute"`
	Relative  float64       `yaml:"relative"` // a fraction: 0.01 is 1 %
	Distance  float64       `yaml:"distance"` // metres, for location readings
	Heartbeat time.Duration `yaml:"heartbeat"`
	Discrete  bool          `yaml:"discrete"` // states and counts: keep on any change
	Off       bool          `yaml:"off"`      // keep every value (to exempt a device or metric)
}

// DeviceDeadbands overrides the deadbands of the devices it matches.
type DeviceDeadbands struct {
	Tenant  string              `yaml:"tenant"` // name or pattern; empty matches every tenant
	Device  string              `yaml:"device"` // name or pattern
	Metrics map[string]Deadband `yaml:"metrics"`
}

// DefaultFilterConfig returns store-on-change with no rule: every reading is kept.
func DefaultFilterConfig() FilterConfig {
	return FilterConfig{MaxSeries: 100_000, SnapshotInterval: time.Minute}
}

// Enabled reports whether any level configures a deadband.
func (c *FilterConfig) Enabled() bool {
	return c.Default != nil || len(c.Metrics) > 0 || len(c.Templates) > 0 || len(c.Devices) > 0
}

// Validate reports every problem, each with its key path below store_on_change.
func (c *FilterConfig) Validate() error {
	var errs []error
	if c.MaxSeries <= 0 {
		errs = append(errs, errors.New("max_series: must be positive"))
	}
	if c.SnapshotInterval <= 0 {
		errs = append(errs, errors.New("snapshot_interval: must be positive"))
	}
	if c.Default != nil {
		errs = append(errs, c.Default.validate("default")...)
	}
	errs = append(errs, validateMetrics("metrics", c.Metrics)...)
	for _, name := range sortedKeys(c.Templates) {
		if name == "" {
			errs = append(errs, errors.New("templates: empty decoder name"))
		}
		errs = append(errs, validateMetrics("templates."+name, c.Templates[name])...)
	}
	for i, d := range c.Devices {
		p := fmt.Sprintf("devices[%d]", i)
		if d.Device == "" {
			errs = append(errs, fmt.Errorf("%s.device: required (a name or a pattern such as \"*\")", p))
		}
		errs = append(errs, validatePattern(p+".tenant", d.Tenant)...)
		errs = append(errs, validatePattern(p+".device", d.Device)...)
		if len(d.Metrics) == 0 {
			errs = append(errs, fmt.Errorf("%s.metrics: required (use \"*\" for every metric)", p))
		}
		errs = append(errs, validateMetrics(p+".metrics", d.Metrics)...)
	}
	return errors.Join(errs...)
}

func validatePattern(key, pat string) []error {
	if _, err := path.Match(pat, ""); err != nil {
		return []error{fmt.Errorf("%s: bad pattern %q", key, pat)}
	}
	return nil
}

func validateMetrics(prefix string, m map[string]Deadband) []error {
	var errs []error
	for _, pat := range sortedKeys(m) {
		if pat == "" {
			errs = append(errs, fmt.Errorf("%s: empty metric name", prefix))
			continue
		}
		if _, err := path.Match(pat, ""); err != nil {
			errs = append(errs, fmt.Errorf("%s: bad pattern %q", prefix, pat))
			continue
		}
		d := m[pat]
		errs = append(errs, d.validate(prefix+"."+pat)...)
	}
	return errs
}

func (d *Deadband) validate(p string) []error {
	if d.Off {
		if d.Absolute != 0 || d.Relative != 0 || d.Distance != 0 || d.Heartbeat != 0 || d.Discrete {
			return []error{fmt.Errorf("%s: off excludes absolute, relative, distance, heartbeat and discrete", p)}
		}
		return nil
	}
	var errs []error
	if d.Absolute < 0 || math.IsNaN(d.Absolute) || math.IsInf(d.Absolute, 0) {
		errs = append(errs, fmt.Errorf("%s.absolute: %v must be a finite number ≥ 0", p, d.Absolute))
	}
	if d.Distance < 0 || math.IsNaN(d.Distance) || math.IsInf(d.Distance, 0) {
		errs = append(errs, fmt.Errorf("%s.distance: %v must be a finite number of metres ≥ 0", p, d.Distance))
	}
	if d.Relative < 0 || d.Relative >= 1 || math.IsNaN(d.Relative) {
		errs = append(errs, fmt.Errorf("%s.relative: %v must be a fraction from 0 to below 1 (0.01 is 1 %%)", p, d.Relative))
	}
	if d.Heartbeat <= 0 {
		errs = append(errs, fmt.Errorf("%s.heartbeat: required and positive (a series that stops changing must still be stored now and then; use off: true to keep every value)", p))
	}
	return errs
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// rule is a resolved Deadband; offRule keeps every value.
type rule struct {
	absolute, relative float64
	distance           float64 // metres
	heartbeat          int64   // nanoseconds
	discrete           bool
}

var offRule = &rule{}

// patterns is a metric → deadband map compiled for lookup: the exact name first, then the
// longest matching pattern (ties by pattern text), so the answer never depends on map order.
type patterns struct {
	exact map[string]*rule
	globs []glob
}

type glob struct {
	pattern string
	rule    *rule
}

func compilePatterns(m map[string]Deadband) patterns {
	p := patterns{exact: map[string]*rule{}}
	for _, pat := range sortedKeys(m) {
		r := compileRule(m[pat])
		if strings.ContainsAny(pat, `*?[\`) {
			p.globs = append(p.globs, glob{pat, r})
		} else {
			p.exact[pat] = r
		}
	}
	sort.SliceStable(p.globs, func(i, j int) bool { return len(p.globs[i].pattern) > len(p.globs[j].pattern) })
	return p
}

func compileRule(d Deadband) *rule {
	if d.Off {
		return offRule
	}
	return &rule{absolute: d.Absolute, relative: d.Relative, distance: d.Distance, heartbeat: int64(d.Heartbeat), discrete: d.Discrete}
}

func (p *patterns) lookup(metric string) *rule {
	if r, ok := p.exact[metric]; ok {
		return r
	}
	for _, g := range p.globs {
		if ok, _ := path.Match(g.pattern, metric); ok {
			return g.rule
		}
	}
	return nil
}

// rules is a compiled FilterConfig.
type rules struct {
	def       *rule
	metrics   patterns
	templates map[string]patterns
	devices   []deviceRules
}

type deviceRules struct {
	tenant, device string
	metrics        patterns
}

func compileRules(c FilterConfig) *rules {
	rs := &rules{metrics: compilePatterns(c.Metrics), templates: map[string]patterns{}}
	if c.Default != nil {
		rs.def = compileRule(*c.Default)
	}
	for name, m := range c.Templates {
		rs.templates[name] = compilePatterns(m)
	}
	for _, d := range c.Devices {
		rs.devices = append(rs.devices, deviceRules{tenant: d.Tenant, device: d.Device, metrics: compilePatterns(d.Metrics)})
	}
	return rs
}

// resolve returns the rule of a series, most specific level first; offRule when none applies.
func (rs *rules) resolve(tenant, device, decoder, metric string) *rule {
	for i := range rs.devices {
		d := &rs.devices[i]
		if !matchName(d.tenant, tenant) || !matchName(d.device, device) {
			continue
		}
		if r := d.metrics.lookup(metric); r != nil {
			return r
		}
	}
	if t, ok := rs.templates[decoder]; ok {
		if r := t.lookup(metric); r != nil {
			return r
		}
	}
	if r := rs.metrics.lookup(metric); r != nil {
		return r
	}
	if rs.def != nil {
		return rs.def
	}
	return offRule
}

func matchName(pattern, name string) bool {
	if pattern == "" || pattern == name {
		return true
	}
	ok, _ := path.Match(pattern, name)
	return ok
}
