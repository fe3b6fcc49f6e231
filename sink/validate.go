package sink

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluice-iot/sluice"
)

// RowLimits are the checks every reading passes before it is written. A reading that fails
// one is a dead letter with the reason; it never reaches the database.
type RowLimits struct {
	// MaxPast refuses readings older than this (relative to the time of writing); 0 disables
	// the check. Keep it above the retention of replayed history.
	MaxPast time.Duration `yaml:"max_past"`
	// MaxFuture refuses readings further ahead than this (clock drift, a wrong epoch unit).
	MaxFuture time.Duration `yaml:"max_future"`
	// MaxTextBytes bounds tenant, device, metric and unit (bytes of UTF-8 each).
	MaxTextBytes int `yaml:"max_text_bytes"`
	// MaxValueBytes bounds the value of a text reading (bytes of UTF-8).
	MaxValueBytes int `yaml:"max_value_bytes"`
}

// maxValueBytes is the largest limits.max_value_bytes: a text value is a row of a narrow table,
// not a document store.
const maxValueBytes = 64 << 10

// DefaultRowLimits returns the default checks: ten years back, one day ahead, 256 bytes for
// names, 1,024 bytes for text values.
func DefaultRowLimits() RowLimits {
	return RowLimits{MaxPast: 10 * 365 * 24 * time.Hour, MaxFuture: 24 * time.Hour, MaxTextBytes: 256, MaxValueBytes: 1024}
}

// Validate reports every problem, each prefixed with its key.
func (l RowLimits) Validate() error {
	var errs []error
	if l.MaxPast < 0 {
		errs = append(errs, errors.New("max_past: must not be negative (0 disables the check)"))
	}
	if l.MaxFuture < 0 {
		errs = append(errs, errors.New("max_future: must not be negative (0 disables the check)"))
	}
	if l.MaxTextBytes < 1 || l.MaxTextBytes > 2048 {
		errs = append(errs, fmt.Errorf("max_text_bytes: %d is outside 1..2048", l.MaxTextBytes))
	}
	if l.MaxValueBytes < 1 || l.MaxValueBytes > maxValueBytes {
		errs = append(errs, fmt.Errorf("max_value_bytes: %d is outside 1..%d", l.MaxValueBytes, maxValueBytes))
	}
	return errors.Join(errs...)
}

// PostgreSQL's timestamptz holds 4713 BC to 294276 AD; Sluice accepts years 1..9999, which
// every client library can also represent, less the first instant of year 1: Go's zero time,
// what a time that was never set looks like.
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// check returns why the reading r of u must not be written, or "" when it may.
func (l RowLimits) check(u *sluice.Uplink, r *sluice.Reading, now time.Time) string {
	if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
		return "value is not a finite number"
	}
	if why := l.checkValue(r); why != "" {
		return why
	}
	switch {
	case !r.Time.After(minTime) || r.Time.After(maxTime):
		return fmt.Sprintf("time %s is out of range (after 0001-01-01T00:00:00Z, until year 9999)", r.Time.UTC().Format(time.RFC3339Nano))
	case l.MaxPast > 0 && r.Time.Before(now.Add(-l.MaxPast)):
		return fmt.Sprintf("time %s is more than %s in the past (limits.max_past)", r.Time.UTC().Format(time.RFC3339), l.MaxPast)
	case l.MaxFuture > 0 && r.Time.After(now.Add(l.MaxFuture)):
		return fmt.Sprintf("time %s is more than %s in the future (limits.max_future)", r.Time.UTC().Format(time.RFC3339), l.MaxFuture)
	}
	for _, f := range [...]struct{ name, s string }{{"tenant", u.Tenant}, {"device", u.Device}, {"metric", r.Metric}, {"unit", r.Unit}} {
		if why := l.checkText(f.s); why != "" {
			return f.name + " " + why
		}
	}
	if r.Metric == "" {
		return "metric is empty"
	}
	return ""
}

func (l RowLimits) checkText(s string) string {
	switch {
	case len(s) > l.MaxTextBytes:
		return fmt.Sprintf("is %d bytes, more than %d (limits.max_text_bytes)", len(s), l.MaxTextBytes)
	case strings.IndexByte(s, 0) >= 0:
		return "contains a NUL byte"
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.ContainsRune(s, utf8.RuneError):
		// What a decoder made of text that was not valid (a JavaScript string with a lone
		// surrogate, bytes decoded by a library that replaces): two different bad names
		// would become one series.
		return "contains U+FFFD, the mark of text that was not valid"
	}
	return ""
}

// checkValue returns why the typed value of r cannot be stored, or "".
func (l RowLimits) checkValue(r *sluice.Reading) string {
	switch r.Type {
	case sluice.TypeNumber, sluice.TypeBool:
		return ""
	case sluice.TypeText:
		switch s := r.Text; {
		case len(s) > l.MaxValueBytes:
			return fmt.Sprintf("text value is %d bytes, more than %d (limits.max_value_bytes)", len(s), l.MaxValueBytes)
		case strings.IndexByte(s, 0) >= 0:
			return "text value contains a NUL byte"
		case !utf8.ValidString(s):
			return "text value is not valid UTF-8"
		}
		return ""
	case sluice.TypeLocation:
		p := r.Location
		switch {
		case p == nil:
			return "location reading has no location"
		case !(p.Lat >= -90 && p.Lat <= 90):
			return fmt.Sprintf("latitude %v is outside -90..90", p.Lat)
		case !(p.Lon >= -180 && p.Lon <= 180):
			return fmt.Sprintf("longitude %v is outside -180..180", p.Lon)
		case p.Alt != nil && (math.IsNaN(*p.Alt) || math.IsInf(*p.Alt, 0)):
			return "altitude is not a finite number"
		}
		return ""
	}
	return fmt.Sprintf("value type %q is unknown", r.Type)
}
