package sluice

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendUplink appends the JSON of u exactly as encoding/json would write it (same field
// order, omitempty rules, map key order, number and string forms), without reflection: the
// wire format is written once per uplink on the ingest hot path.
func appendUplink(b []byte, u *Uplink) ([]byte, error) {
	var err error
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(u.V), 10)
	b = appendKeyString(b, `,"id":`, u.ID)
	b = appendKeyString(b, `,"tenant":`, u.Tenant)
	b = appendKeyString(b, `,"device":`, u.Device)
	if u.Topic != "" {
		b = appendKeyString(b, `,"topic":`, u.Topic)
	}
	b = append(b, `,"received_at":`...)
	if b, err = appendTime(b, u.ReceivedAt); err != nil {
		return nil, err
	}
	if u.Decoder != "" {
		b = appendKeyString(b, `,"decoder":`, u.Decoder)
	}
	if u.FPort != nil {
		b = append(b, `,"f_port":`...)
		b = strconv.AppendInt(b, int64(*u.FPort), 10)
	}
	if u.FCnt != nil {
		b = append(b, `,"f_cnt":`...)
		b = strconv.AppendUint(b, uint64(*u.FCnt), 10)
	}
	if len(u.Data) > 0 {
		b = append(b, `,"data":`...)
		if b, err = appendAny(b, u.Data); err != nil {
			return nil, err
		}
	}
	b = append(b, `,"readings":`...)
	if u.Readings == nil {
		b = append(b, "null"...)
	} else if b, err = appendReadings(b, u.Readings); err != nil {
		return nil, err
	}
	if len(u.Suppressed) > 0 {
		b = append(b, `,"suppressed":`...)
		if b, err = appendReadings(b, u.Suppressed); err != nil {
			return nil, err
		}
	}
	if len(u.Warnings) > 0 {
		b = append(b, `,"warnings":[`...)
		for i, w := range u.Warnings {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, w)
		}
		b = append(b, ']')
	}
	if u.Class != "" {
		b = appendKeyString(b, `,"class":`, u.Class)
	}
	if len(u.Tags) > 0 {
		b = append(b, `,"tags":{`...)
		keys := make([]string, 0, len(u.Tags))
		for k := range u.Tags {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, u.Tags[k])
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

func appendReadings(b []byte, rs []Reading) ([]byte, error) {
	var err error
	b = append(b, '[')
	for i := range rs {
		r := &rs[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = appendKeyString(b, `{"metric":`, r.Metric)
		if r.Type != "" {
			b = appendKeyString(b, `,"type":`, string(r.Type))
		}
		b = append(b, `,"value":`...)
		if b, err = appendFloat(b, r.Value); err != nil {
			return nil, err
		}
		if r.Text != "" {
			b = appendKeyString(b, `,"text":`, r.Text)
		}
		if l := r.Location; l != nil {
			b = append(b, `,"location":{"lat":`...)
			if b, err = appendFloat(b, l.Lat); err != nil {
				return nil, err
			}
			b = append(b, `,"lon":`...)
			if b, err = appendFloat(b, l.Lon); err != nil {
				return nil, err
			}
			if l.Alt != nil {
				b = append(b, `,"alt":`...)
				if b, err = appendFloat(b, *l.Alt); err != nil {
					return nil, err
				}
			}
			b = append(b, '}')
		}
		if r.Unit != "" {
			b = appendKeyString(b, `,"unit":`, r.Unit)
		}
		b = append(b, `,"time":`...)
		if b, err = appendTime(b, r.Time); err != nil {
			return nil, err
		}
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

func appendKeyString(b []byte, key, s string) []byte {
	return appendString(append(b, key...), s)
}

// appendTime writes t as time.Time.MarshalJSON does.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("json: time %v: year outside of range [0,9999]", t)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

// appendFloat writes f as encoding/json does (ES6 number formatting); NaN and ±Inf are errors.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("json: unsupported value: %v", f)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' { // clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// safeASCII marks the bytes encoding/json writes as they are inside a string.
var safeASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString writes s as a JSON string the way encoding/json does (HTML-safe escapes,
// invalid UTF-8 replaced).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || !safeASCII[c] {
			q, _ := json.Marshal(s) // rare: let the standard library get every escape right
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendAny writes a decoded JSON value (what decoders return); other types go through
// encoding/json.
func appendAny(b []byte, v any) ([]byte, error) {
	var err error
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, x), nil
	case float64:
		return appendFloat(b, x)
	case bool:
		return strconv.AppendBool(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case map[string]any:
		if len(x) == 0 {
			return append(b, "{}"...), nil
		}
		var small [16]string
		keys := small[:0]
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			if b, err = appendAny(b, x[k]); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case []any:
		if x == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendAny(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	default:
		q, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		return append(b, q...), nil
	}
}
