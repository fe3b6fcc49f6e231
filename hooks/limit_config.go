package hooks

import (
	"errors"
	"fmt"
	"math"
)

// LimitConfig configures flood protection (yaml `limits:`): token buckets that bound the
// publish rate of each device and of each MQTT connection. A rate of 0 is unlimited, the
// default, so nothing is refused by surprise.
type LimitConfig struct {
	// Device bounds each device (tenant, device) whatever connection it publishes on.
	Device Rate `yaml:"device"`
	// Connection bounds each MQTT client id, whatever devices it publishes for (a gateway or a
	// network server publishes for many: size it for all of them).
	Connection Rate `yaml:"connection"`
	// MaxBuckets bounds the buckets of each kind; the least recently used one is forgotten
	// (a forgotten bucket comes back full).
	MaxBuckets int `yaml:"max_buckets"`
	// Overrides replace Device for the devices they match; the first match wins.
	Overrides []RateOverride `yaml:"overrides"`
}

// Rate is a token bucket: Rate messages per second on average, Burst at once.
type Rate struct {
	Rate  float64 `yaml:"rate"`  // messages per second; 0 is unlimited
	Burst int     `yaml:"burst"` // bucket size; 0 means max(1, rate)
}

// RateOverride is the device rate of the devices it matches.
type RateOverride struct {
	Tenant string  `yaml:"tenant"` // name or pattern; empty matches every tenant
	Device string  `yaml:"device"` // name or pattern; empty matches every device
	Rate   float64 `yaml:"rate"`   // 0 is unlimited
	Burst  int     `yaml:"burst"`
}

// DefaultLimitConfig returns no limits.
func DefaultLimitConfig() LimitConfig { return LimitConfig{MaxBuckets: 100_000} }

// Enabled reports whether any rate is configured.
func (c *LimitConfig) Enabled() bool {
	return c.Device.Rate > 0 || c.Connection.Rate > 0 || len(c.Overrides) > 0
}

// Validate reports every problem, each with its key path below limits.
func (c *LimitConfig) Validate() error {
	var errs []error
	if c.MaxBuckets <= 0 {
		errs = append(errs, errors.New("max_buckets: must be positive"))
	}
	errs = append(errs, validateRate("device", c.Device.Rate, c.Device.Burst)...)
	errs = append(errs, validateRate("connection", c.Connection.Rate, c.Connection.Burst)...)
	for i, o := range c.Overrides {
		p := fmt.Sprintf("overrides[%d]", i)
		if o.Tenant == "" && o.Device == "" {
			errs = append(errs, fmt.Errorf("%s: set tenant, device or both (use device for the global rate)", p))
		}
		errs = append(errs, validatePattern(p+".tenant", o.Tenant)...)
		errs = append(errs, validatePattern(p+".device", o.Device)...)
		errs = append(errs, validateRate(p, o.Rate, o.Burst)...)
	}
	return errors.Join(errs...)
}

func validateRate(p string, rate float64, burst int) []error {
	var errs []error
	if rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		errs = append(errs, fmt.Errorf("%s.rate: %v must be a finite number ≥ 0 (messages per second; 0 is unlimited)", p, rate))
	}
	if burst < 0 {
		errs = append(errs, fmt.Errorf("%s.burst: %d must be ≥ 0", p, burst))
	}
	return errs
}

// bucketRate is a validated rate; rate 0 is unlimited.
type bucketRate struct {
	rate  float64 // tokens per nanosecond
	burst float64
}

func newBucketRate(rate float64, burst int) bucketRate {
	if rate == 0 {
		return bucketRate{}
	}
	b := float64(burst)
	if burst == 0 {
		b = max(1, math.Floor(rate))
	}
	return bucketRate{rate: rate / 1e9, burst: b}
}

// deviceRate returns the rate of a device: the first matching override, else the default.
func (c *LimitConfig) deviceRate(tenant, device string) bucketRate {
	for _, o := range c.Overrides {
		if matchName(o.Tenant, tenant) && matchName(o.Device, device) {
			return newBucketRate(o.Rate, o.Burst)
		}
	}
	return newBucketRate(c.Device.Rate, c.Device.Burst)
}
