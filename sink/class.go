package sink

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// StorageConfig lays out a target's readings: retention classes, each a table of its own with
// its chunk interval, compression and retention, and the rules assigning tenants and devices
// to them.
type StorageConfig struct {
	// DefaultClass holds every series no rule in Assign names.
	DefaultClass string `yaml:"default_class"`
	// Classes are the retention classes; each becomes the table measurements_<name>.
	Classes []ClassConfig `yaml:"classes"`
	// Assign maps tenants, or single devices of a tenant, to a class. A device rule beats the
	// rule of its tenant.
	Assign []AssignRule `yaml:"assign"`
}

// ClassConfig is one retention class.
type ClassConfig struct {
	Name string `yaml:"name"`
	// ChunkInterval is the time span of one hypertable chunk (TimescaleDB only).
	ChunkInterval Period `yaml:"chunk_interval"`
	// CompressAfter compresses chunks older than this; 0 never compresses (TimescaleDB only).
	CompressAfter Period `yaml:"compress_after"`
	// Retention drops chunks older than this; 0 keeps readings forever (TimescaleDB only).
	Retention Period `yaml:"retention"`
}

// AssignRule puts the series of one tenant, or of one device when Device is set, in Class.
type AssignRule struct {
	Tenant string `yaml:"tenant"`
	Device string `yaml:"device"`
	Class  string `yaml:"class"`
}

// DefaultClassName is the class of existing databases: measurements_standard.
const DefaultClassName = "standard"

// DefaultClassConfig returns the settings of the standard class.
func DefaultClassConfig() ClassConfig {
	return ClassConfig{Name: DefaultClassName, ChunkInterval: Period(24 * time.Hour), CompressAfter: Period(7 * 24 * time.Hour)}
}

// DefaultStorageConfig returns one class, standard, holding everything forever.
func DefaultStorageConfig() StorageConfig {
	return StorageConfig{DefaultClass: DefaultClassName, Classes: []ClassConfig{DefaultClassConfig()}}
}

// UnmarshalYAML starts every class from DefaultClassConfig (without its name), so a class need
// only name what differs.
func (c *ClassConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain ClassConfig
	p := plain(DefaultClassConfig())
	p.Name = ""
	if err := n.Decode(&p); err != nil {
		return err
	}
	*c = ClassConfig(p)
	return nil
}

// className keeps measurements_<name>_1h within PostgreSQL's 63-byte identifiers.
var className = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

// minRetention leaves the daily aggregate's refresh window (at least two buckets) inside the
// kept data.
const minRetention = 3 * 24 * time.Hour

// Validate reports every problem, each prefixed with its key.
func (c StorageConfig) Validate() error {
	var errs []error
	if len(c.Classes) == 0 {
		errs = append(errs, errors.New("classes: at least one class is required"))
	}
	names := map[string]bool{}
	for i, cl := range c.Classes {
		p := fmt.Sprintf("classes[%d].", i)
		if !className.MatchString(cl.Name) {
			errs = append(errs, fmt.Errorf("%sname: %q must be a lower-case identifier of at most 40 characters", p, cl.Name))
		} else if names[cl.Name] {
			errs = append(errs, fmt.Errorf("%sname: %q is used twice", p, cl.Name))
		}
		names[cl.Name] = true
		if cl.ChunkInterval < Period(time.Minute) {
			errs = append(errs, fmt.Errorf("%schunk_interval: %s is below the minimum of 1m", p, cl.ChunkInterval))
		}
		if cl.CompressAfter < 0 {
			errs = append(errs, fmt.Errorf("%scompress_after: must not be negative (0 never compresses)", p))
		}
		if cl.Retention < 0 {
			errs = append(errs, fmt.Errorf("%sretention: must not be negative (0 keeps readings forever)", p))
		}
		if cl.Retention > 0 && cl.Retention < Period(minRetention) {
			errs = append(errs, fmt.Errorf("%sretention: %s is below the minimum of 3d (the daily aggregates refresh the last days from raw readings)", p, cl.Retention))
		}
		if cl.Retention > 0 && cl.CompressAfter >= cl.Retention {
			errs = append(errs, fmt.Errorf("%scompress_after: %s must be shorter than retention %s (chunks would be dropped before they are compressed)", p, cl.CompressAfter, cl.Retention))
		}
	}
	if !names[c.DefaultClass] {
		errs = append(errs, fmt.Errorf("default_class: %q is not one of the classes", c.DefaultClass))
	}
	seen := map[[2]string]bool{}
	for i, r := range c.Assign {
		p := fmt.Sprintf("assign[%d].", i)
		if r.Tenant == "" {
			errs = append(errs, fmt.Errorf("%stenant: required", p))
		}
		if !names[r.Class] {
			errs = append(errs, fmt.Errorf("%sclass: %q is not one of the classes", p, r.Class))
		}
		k := [2]string{r.Tenant, r.Device}
		if seen[k] {
			errs = append(errs, fmt.Errorf("%s: tenant %q device %q is assigned twice", strings.TrimSuffix(p, "."), r.Tenant, r.Device))
		}
		seen[k] = true
	}
	return errors.Join(errs...)
}

// class returns the configuration of the named class.
func (c StorageConfig) class(name string) (ClassConfig, bool) {
	for _, cl := range c.Classes {
		if cl.Name == name {
			return cl, true
		}
	}
	return ClassConfig{}, false
}

// classifier answers which class a series belongs to. It is read-only after construction and
// safe for concurrent use.
type classifier struct {
	names    []string // index → class name, in configuration order
	byName   map[string]int
	tenants  map[string]int
	devices  map[[2]string]int
	fallback int
}

func newClassifier(c StorageConfig) *classifier {
	k := &classifier{byName: map[string]int{}, tenants: map[string]int{}, devices: map[[2]string]int{}}
	for i, cl := range c.Classes {
		k.names = append(k.names, cl.Name)
		k.byName[cl.Name] = i
	}
	k.fallback = k.byName[c.DefaultClass]
	for _, r := range c.Assign {
		if r.Device == "" {
			k.tenants[r.Tenant] = k.byName[r.Class]
		} else {
			k.devices[[2]string{r.Tenant, r.Device}] = k.byName[r.Class]
		}
	}
	return k
}

// of returns the index of the class of a device's series.
func (k *classifier) of(tenant, device string) int {
	if len(k.devices) > 0 {
		if i, ok := k.devices[[2]string{tenant, device}]; ok {
			return i
		}
	}
	if i, ok := k.tenants[tenant]; ok {
		return i
	}
	return k.fallback
}

// Period is a duration that configuration files may write in days or weeks as well as Go
// durations: "30d", "2w", "12h", "90m"; 0 or "" is zero.
type Period time.Duration

// ParsePeriod parses a period.
func ParsePeriod(s string) (Period, error) {
	t := strings.TrimSpace(s)
	if t == "" || t == "0" {
		return 0, nil
	}
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"d", 24 * time.Hour}, {"w", 7 * 24 * time.Hour}} {
		if n, ok := strings.CutSuffix(t, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err == nil && (v > math.MaxInt64/int64(u.unit) || v < math.MinInt64/int64(u.unit)) {
				return 0, fmt.Errorf("invalid period %q: out of range (at most 106751d)", s)
			}
			if err != nil {
				return 0, fmt.Errorf("invalid period %q (want a whole number of days or weeks such as 30d, or a duration such as 12h)", s)
			}
			return Period(time.Duration(v) * u.unit), nil
		}
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("invalid period %q (want 30d, 2w, 12h or 90m)", s)
	}
	return Period(d), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (used by YAML decoding).
func (p *Period) UnmarshalText(text []byte) error {
	v, err := ParsePeriod(string(text))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// String formats p in its largest whole unit ("30d", "12h", "90m"), else as a Go duration.
func (p Period) String() string {
	d := time.Duration(p)
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}} {
		if d != 0 && d%u.unit == 0 {
			return strconv.FormatInt(int64(d/u.unit), 10) + u.suffix
		}
	}
	return d.String()
}

// interval renders p as a PostgreSQL interval literal in its largest exact unit.
func (p Period) interval() string {
	d := time.Duration(p)
	for _, u := range []struct {
		name string
		unit time.Duration
	}{{"day", 24 * time.Hour}, {"hour", time.Hour}, {"minute", time.Minute}, {"second", time.Second}} {
		if d%u.unit == 0 {
			n := d / u.unit
			if n == 1 {
				return "INTERVAL '1 " + u.name + "'"
			}
			return fmt.Sprintf("INTERVAL '%d %ss'", n, u.name)
		}
	}
	return fmt.Sprintf("INTERVAL '%d microseconds'", d.Microseconds())
}
