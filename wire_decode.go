package sluice

import (
	"fmt"
	"time"

	"github.com/sluice-iot/sluice/internal/jsonscan"
)

// decodeUplink parses the JSON of an uplink without reflection. It accepts what appendUplink
// and encoding/json write and gives the same Uplink encoding/json would, except that keys
// match exactly (encoding/json also accepts other letter cases) and unknown keys are skipped.
// A null stands for the zero value wherever one is allowed.
func decodeUplink(b []byte, u *Uplink, storeOnly bool) error {
	d := wireDecoder{s: jsonscan.New(b, jsonscan.Explain)}
	s := &d.s
	ok := d.object(func(key []byte) bool {
		if storeOnly {
			switch string(key) {
			case "data", "suppressed", "warnings", "tags", "topic":
				return s.Skip()
			}
		}
		var ok bool
		switch string(key) {
		case "v":
			var n int64
			n, ok = d.int(64)
			u.V = int(n)
		case "id":
			u.ID, ok = d.string()
		case "tenant":
			u.Tenant, ok = d.string()
		case "device":
			u.Device, ok = d.string()
		case "topic":
			u.Topic, ok = d.string()
		case "received_at":
			u.ReceivedAt, ok = d.time()
		case "decoder":
			u.Decoder, ok = d.string()
		case "f_port":
			if s.Null() {
				u.FPort = nil
				return true
			}
			var n int64
			n, ok = d.int(64)
			p := int(n)
			u.FPort = &p
		case "f_cnt":
			if s.Null() {
				u.FCnt = nil
				return true
			}
			var n uint64
			n, ok = s.Uint(32)
			c := uint32(n)
			u.FCnt = &c
		case "data":
			if s.Null() {
				u.Data = nil
				return true
			}
			if u.Data == nil {
				u.Data = map[string]any{}
			}
			ok = d.object(func(k []byte) bool {
				v, ok := s.Value()
				u.Data[string(k)] = v
				return ok
			})
		case "readings":
			u.Readings, ok = d.readings()
		case "suppressed":
			u.Suppressed, ok = d.readings()
		case "warnings":
			if s.Null() {
				u.Warnings = nil
				return true
			}
			u.Warnings = []string{}
			ok = d.array(func() bool {
				w, ok := d.string()
				u.Warnings = append(u.Warnings, w)
				return ok
			})
		case "class":
			u.Class, ok = d.string()
		case "tags":
			if s.Null() {
				u.Tags = nil
				return true
			}
			if u.Tags == nil {
				u.Tags = map[string]string{}
			}
			ok = d.object(func(k []byte) bool {
				v, ok := d.string()
				u.Tags[string(k)] = v
				return ok
			})
		default:
			_, ok = s.Value()
		}
		return ok
	})
	if !ok {
		return d.err()
	}
	if !s.End() {
		s.Fail("data after the top-level value")
		return s.Err()
	}
	return nil
}

// wireDecoder reads the wire form's values, where a null is the zero value, from a scanner
// that explains what it cannot read.
type wireDecoder struct {
	s   jsonscan.Scanner
	bad error // a problem beyond JSON: a time that does not parse
}

// err is why the decoding stopped.
func (d *wireDecoder) err() error {
	if d.bad != nil {
		return d.bad
	}
	return d.s.Err()
}

func (d *wireDecoder) object(field func(key []byte) bool) bool {
	return d.s.Null() || d.s.Object(field)
}

func (d *wireDecoder) array(elem func() bool) bool {
	return d.s.Null() || d.s.Array(elem)
}

func (d *wireDecoder) string() (string, bool) {
	if d.s.Null() {
		return "", true
	}
	return d.s.Str()
}

func (d *wireDecoder) time() (time.Time, bool) {
	if d.s.Null() {
		return time.Time{}, true
	}
	b, ok := d.s.Text()
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, string(b))
	if err != nil {
		d.bad = fmt.Errorf("bad time before byte %d: %w", d.s.Pos(), err)
		return time.Time{}, false
	}
	return t, true
}

func (d *wireDecoder) float() (float64, bool) {
	if d.s.Null() {
		return 0, true
	}
	return d.s.Float()
}

func (d *wireDecoder) int(bits int) (int64, bool) {
	if d.s.Null() {
		return 0, true
	}
	return d.s.Int(bits)
}

func (d *wireDecoder) readings() ([]Reading, bool) {
	if d.s.Null() {
		return nil, true
	}
	rs := make([]Reading, 0, 8)
	ok := d.s.Array(func() bool {
		var r Reading
		ok := d.object(func(key []byte) bool {
			var ok bool
			switch string(key) {
			case "metric":
				r.Metric, ok = d.string()
			case "type":
				var t string
				t, ok = d.string()
				r.Type = ValueType(t)
			case "value":
				r.Value, ok = d.float()
			case "text":
				r.Text, ok = d.string()
			case "location":
				if d.s.Null() {
					r.Location = nil
					return true
				}
				r.Location = &Location{}
				ok = d.s.Object(func(key []byte) bool {
					l := r.Location
					var ok bool
					switch string(key) {
					case "lat":
						l.Lat, ok = d.float()
					case "lon":
						l.Lon, ok = d.float()
					case "alt":
						if d.s.Null() {
							l.Alt = nil
							return true
						}
						var a float64
						a, ok = d.s.Float()
						l.Alt = &a
					default:
						_, ok = d.s.Value()
					}
					return ok
				})
			case "unit":
				r.Unit, ok = d.string()
			case "time":
				r.Time, ok = d.time()
			default:
				_, ok = d.s.Value()
			}
			return ok
		})
		rs = append(rs, r)
		return ok
	})
	return rs, ok
}
