package sluice

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// decodeUplink parses the JSON of an uplink without reflection. It accepts what appendUplink
// and encoding/json write and gives the same Uplink encoding/json would, except that keys
// match exactly (encoding/json also accepts other letter cases) and unknown keys are skipped.
func decodeUplink(b []byte, u *Uplink, storeOnly bool) error {
	s := scanner{b: b}
	err := s.object(func(key []byte) error {
		var err error
		if storeOnly {
			switch string(key) {
			case "data", "suppressed", "warnings", "tags", "topic":
				return s.skip()
			}
		}
		switch string(key) {
		case "v":
			var n int64
			n, err = s.int(64)
			u.V = int(n)
		case "id":
			u.ID, err = s.string()
		case "tenant":
			u.Tenant, err = s.string()
		case "device":
			u.Device, err = s.string()
		case "topic":
			u.Topic, err = s.string()
		case "received_at":
			u.ReceivedAt, err = s.time()
		case "decoder":
			u.Decoder, err = s.string()
		case "f_port":
			if s.null() {
				u.FPort = nil
				return nil
			}
			var n int64
			n, err = s.int(64)
			p := int(n)
			u.FPort = &p
		case "f_cnt":
			if s.null() {
				u.FCnt = nil
				return nil
			}
			var n int64
			n, err = s.uint32()
			c := uint32(n)
			u.FCnt = &c
		case "data":
			if s.null() {
				u.Data = nil
				return nil
			}
			if u.Data == nil {
				u.Data = map[string]any{}
			}
			err = s.object(func(k []byte) error {
				v, err := s.value()
				u.Data[string(k)] = v
				return err
			})
		case "readings":
			u.Readings, err = s.readings()
		case "suppressed":
			u.Suppressed, err = s.readings()
		case "warnings":
			if s.null() {
				u.Warnings = nil
				return nil
			}
			u.Warnings = []string{}
			err = s.array(func() error {
				w, err := s.string()
				u.Warnings = append(u.Warnings, w)
				return err
			})
		case "class":
			u.Class, err = s.string()
		case "tags":
			if s.null() {
				u.Tags = nil
				return nil
			}
			if u.Tags == nil {
				u.Tags = map[string]string{}
			}
			err = s.object(func(k []byte) error {
				v, err := s.string()
				u.Tags[string(k)] = v
				return err
			})
		default:
			_, err = s.value()
		}
		return err
	})
	if err != nil {
		return err
	}
	s.ws()
	if s.i != len(s.b) {
		return s.fail("data after the top-level value")
	}
	return nil
}

// scanner reads JSON from b, one value at a time.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) fail(what string) error {
	return fmt.Errorf("invalid JSON at byte %d: %s", s.i, what)
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte (0 at the end).
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// null consumes a null if one is next.
func (s *scanner) null() bool { return s.peek() == 'n' && s.literal("null") }

// object calls field for each key of an object (or nothing for null), with the scanner on
// the key's value; field must consume it.
func (s *scanner) object(field func(key []byte) error) error {
	if s.null() {
		return nil
	}
	if s.peek() != '{' {
		return s.fail("want an object")
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		if s.peek() != '"' {
			return s.fail("want a key")
		}
		key, err := s.rawString()
		if err != nil {
			return err
		}
		if s.peek() != ':' {
			return s.fail("want ':'")
		}
		s.i++
		if err := field(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.fail("want ',' or '}'")
		}
	}
}

// array calls elem for each element of an array (or nothing for null).
func (s *scanner) array(elem func() error) error {
	if s.null() {
		return nil
	}
	if s.peek() != '[' {
		return s.fail("want an array")
	}
	s.i++
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if err := elem(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.fail("want ',' or ']'")
		}
	}
}

// rawString returns the next string's contents, unescaped. The result aliases b when the
// string has no escapes; copy it to keep it.
func (s *scanner) rawString() ([]byte, error) {
	if s.peek() != '"' {
		return nil, s.fail("want a string")
	}
	start := s.i + 1
	for i := start; i < len(s.b); i++ {
		c := s.b[i]
		switch {
		case c == '"':
			s.i = i + 1
			return s.b[start:i], nil
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			return s.slowString()
		}
	}
	return nil, s.fail("unterminated string")
}

// slowString handles strings with escapes or non-ASCII bytes through encoding/json.
func (s *scanner) slowString() ([]byte, error) {
	start := s.i
	i := start + 1
	for ; i < len(s.b); i++ {
		if s.b[i] == '\\' {
			i++
			continue
		}
		if s.b[i] == '"' {
			break
		}
	}
	if i >= len(s.b) {
		return nil, s.fail("unterminated string")
	}
	var str string
	if err := json.Unmarshal(s.b[start:i+1], &str); err != nil {
		return nil, s.fail(err.Error())
	}
	s.i = i + 1
	return []byte(str), nil
}

func (s *scanner) string() (string, error) {
	if s.null() {
		return "", nil
	}
	b, err := s.rawString()
	return string(b), err
}

func (s *scanner) time() (time.Time, error) {
	if s.null() {
		return time.Time{}, nil
	}
	b, err := s.rawString()
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339, string(b))
	if err != nil {
		return time.Time{}, fmt.Errorf("bad time before byte %d: %w", s.i, err)
	}
	return t, nil
}

// number returns the next number's text, checked against JSON's grammar.
func (s *scanner) number() ([]byte, error) {
	s.ws()
	start, i := s.i, s.i
	digits := func() int {
		n := 0
		for i < len(s.b) && s.b[i] >= '0' && s.b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s.b) && s.b[i] == '-' {
		i++
	}
	if i < len(s.b) && s.b[i] == '0' {
		i++
	} else if digits() == 0 {
		return nil, s.fail("want a number")
	}
	if i < len(s.b) && s.b[i] == '.' {
		i++
		if digits() == 0 {
			return nil, s.fail("want digits after '.'")
		}
	}
	if i < len(s.b) && (s.b[i] == 'e' || s.b[i] == 'E') {
		i++
		if i < len(s.b) && (s.b[i] == '+' || s.b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return nil, s.fail("want digits in the exponent")
		}
	}
	s.i = i
	return s.b[start:i], nil
}

func (s *scanner) float() (float64, error) {
	if s.null() {
		return 0, nil
	}
	n, err := s.number()
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return 0, s.fail(fmt.Sprintf("number %s: %v", n, errors.Unwrap(err)))
	}
	return f, nil
}

func (s *scanner) int(bits int) (int64, error) {
	if s.null() {
		return 0, nil
	}
	n, err := s.number()
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(string(n), 10, bits)
	if err != nil {
		return 0, s.fail(fmt.Sprintf("number %s is not an integer of %d bits", n, bits))
	}
	return v, nil
}

func (s *scanner) uint32() (int64, error) {
	n, err := s.number()
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(string(n), 10, 32)
	if err != nil {
		return 0, s.fail(fmt.Sprintf("number %s is not an unsigned 32-bit integer", n))
	}
	return int64(v), nil
}

func (s *scanner) readings() ([]Reading, error) {
	if s.null() {
		return nil, nil
	}
	rs := make([]Reading, 0, 8)
	err := s.array(func() error {
		var r Reading
		err := s.object(func(key []byte) error {
			var err error
			switch string(key) {
			case "metric":
				r.Metric, err = s.string()
			case "value":
				r.Value, err = s.float()
			case "unit":
				r.Unit, err = s.string()
			case "time":
				r.Time, err = s.time()
			default:
				_, err = s.value()
			}
			return err
		})
		rs = append(rs, r)
		return err
	})
	return rs, err
}

// skip passes over the next value without building it. Strings are scanned for their end
// only: a bad escape inside a skipped value goes unnoticed.
func (s *scanner) skip() error {
	switch c := s.peek(); {
	case c == '{':
		return s.object(func([]byte) error { return s.skip() })
	case c == '[':
		return s.array(s.skip)
	case c == '"':
		for i := s.i + 1; i < len(s.b); i++ {
			switch s.b[i] {
			case '\\':
				i++
			case '"':
				s.i = i + 1
				return nil
			}
		}
		return s.fail("unterminated string")
	case c == 't' && s.literal("true"), c == 'f' && s.literal("false"), c == 'n' && s.literal("null"):
		return nil
	case c == '-' || c >= '0' && c <= '9':
		_, err := s.number()
		return err
	default:
		return s.fail("want a value")
	}
}

// value returns the next value as encoding/json decodes into an interface: map[string]any,
// []any, string, float64, bool or nil.
func (s *scanner) value() (any, error) {
	switch c := s.peek(); {
	case c == '{':
		m := map[string]any{}
		err := s.object(func(k []byte) error {
			v, err := s.value()
			m[string(k)] = v
			return err
		})
		return m, err
	case c == '[':
		a := []any{}
		err := s.array(func() error {
			v, err := s.value()
			a = append(a, v)
			return err
		})
		return a, err
	case c == '"':
		return s.string()
	case c == 't' && s.literal("true"):
		return true, nil
	case c == 'f' && s.literal("false"):
		return false, nil
	case c == 'n' && s.literal("null"):
		return nil, nil
	case c == '-' || c >= '0' && c <= '9':
		return s.float()
	default:
		return nil, s.fail("want a value")
	}
}
