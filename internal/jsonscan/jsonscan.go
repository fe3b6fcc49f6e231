// Package jsonscan reads JSON one value at a time, in one pass and without reflection: the
// scanner under Sluice's hand-written decoders on the hot paths (the wire form of an uplink,
// network servers' events). It builds no value the caller does not ask for and does no I/O.
//
// A Scanner carries one of two policies. Explain reads all of JSON and explains the first
// problem (Err, with its byte offset), for a decoder that reports errors itself. Plain reads
// only the plain subset network servers write and gives up on anything else, for a decoder
// that then falls back to encoding/json, which gives the result or the error it always gave.
package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Policy is what a Scanner does with JSON beyond the plain subset.
type Policy uint8

const (
	// Explain reads all of JSON: strings with escapes or any UTF-8 are decoded as
	// encoding/json decodes them, nesting is not bounded, and Err explains the first problem.
	Explain Policy = iota
	// Plain reads the plain subset: a string with an escape or a byte outside printable ASCII,
	// or nesting deeper than MaxDepth, fails like invalid JSON, so that the caller gives up and
	// decodes with encoding/json. A caller on this policy need not read Err.
	Plain
)

// MaxDepth bounds the nesting a Plain scanner follows.
const MaxDepth = 64

// Scanner reads JSON from a byte slice. Every method reads one value (or one token) after
// optional white space and reports false when it cannot; the first such failure is kept for
// Err, and the scanner's position is then unspecified. The zero Scanner reads an empty input
// with the Explain policy. A Scanner is not safe for concurrent use.
type Scanner struct {
	b     []byte
	i     int
	depth int
	plain bool

	failed bool
	at     int    // where the first failure happened
	what   string // what failed, or the number's error when num is set
	num    []byte // the number that did not fit
	bits   int    // its wanted size; -1 for a float, 0 for an unsigned 32-bit integer
}

// New returns a scanner of b with policy p.
func New(b []byte, p Policy) Scanner { return Scanner{b: b, plain: p == Plain} }

// Err explains the first failure: "invalid JSON at byte N: what". Nil when nothing failed.
func (s *Scanner) Err() error {
	if !s.failed {
		return nil
	}
	what := s.what
	switch {
	case s.num == nil:
	case s.bits < 0:
		what = fmt.Sprintf("number %s: %s", s.num, s.what)
	case s.bits == 0:
		what = fmt.Sprintf("number %s is not an unsigned 32-bit integer", s.num)
	default:
		what = fmt.Sprintf("number %s is not an integer of %d bits", s.num, s.bits)
	}
	return fmt.Errorf("invalid JSON at byte %d: %s", s.at, what)
}

// Fail records a failure at the current position, unless one is recorded already, and
// returns false: for the caller's own checks of what it reads.
//
//go:noinline (a failure is rare: kept out of the callers' hot loops)
func (s *Scanner) Fail(what string) bool {
	if !s.failed {
		s.failed, s.at, s.what = true, s.i, what
	}
	return false
}

//go:noinline
func (s *Scanner) failNumber(n []byte, bits int, what string) bool {
	if !s.failed {
		s.failed, s.at, s.what, s.num, s.bits = true, s.i, what, n, bits
	}
	return false
}

// Pos is the offset of the next byte to read.
func (s *Scanner) Pos() int { return s.i }

// Space passes over white space.
func (s *Scanner) Space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// Peek returns the next byte that is not white space; 0 at the end.
func (s *Scanner) Peek() byte {
	s.Space()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// End reports whether only white space is left.
func (s *Scanner) End() bool {
	s.Space()
	return s.i == len(s.b)
}

// literal reads word if it is next, with the scanner past white space (after Peek).
func (s *Scanner) literal(word string) bool {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

// Null reads a null if one is next, and reports whether it did.
func (s *Scanner) Null() bool {
	if s.Peek() != 'n' || len(s.b)-s.i < 4 || string(s.b[s.i:s.i+4]) != "null" {
		return false
	}
	s.i += 4
	return true
}

// Bool reads true or false.
func (s *Scanner) Bool() (v, ok bool) {
	switch c := s.Peek(); {
	case c == 't' && s.literal("true"):
		return true, true
	case c == 'f' && s.literal("false"):
		return false, true
	}
	return false, s.Fail("want a boolean")
}

// Object reads an object, calling field for each member with the scanner at its value; field
// must read the value and report whether it could. Keys are read as Text reads strings.
func (s *Scanner) Object(field func(key []byte) bool) bool {
	if s.Peek() != '{' {
		return s.Fail("want an object")
	}
	if s.plain && s.depth >= MaxDepth {
		return s.Fail("nested too deep")
	}
	s.i++
	if s.Peek() == '}' {
		s.i++
		return true
	}
	s.depth++ // kept on the way out of a success only: after a failure the scanner is done
	for {
		if s.Peek() != '"' {
			return s.Fail("want a key")
		}
		key, ok := s.Text()
		if !ok {
			return false
		}
		if s.Peek() != ':' {
			return s.Fail("want ':'")
		}
		s.i++
		if !field(key) {
			return false
		}
		switch s.Peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			s.depth--
			return true
		default:
			return s.Fail("want ',' or '}'")
		}
	}
}

// Array reads an array, calling elem with the scanner at each element; elem must read it and
// report whether it could.
func (s *Scanner) Array(elem func() bool) bool {
	if s.Peek() != '[' {
		return s.Fail("want an array")
	}
	if s.plain && s.depth >= MaxDepth {
		return s.Fail("nested too deep")
	}
	s.i++
	if s.Peek() == ']' {
		s.i++
		return true
	}
	s.depth++
	for {
		s.Space()
		if !elem() {
			return false
		}
		switch s.Peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			s.depth--
			return true
		default:
			return s.Fail("want ',' or ']'")
		}
	}
}

// Fields reads an object whose members named in names (at most 64) go to read(index of the
// name), with the scanner at the value; it skips the others. For a Plain scanner, a name given
// twice, or a key encoding/json would match to a name only case-insensitively, fails: they
// need encoding/json.
func (s *Scanner) Fields(names []string, read func(i int) bool) bool {
	var seen uint64
	return s.Object(func(key []byte) bool {
		for i, name := range names {
			if string(key) == name {
				if seen&(1<<i) != 0 && s.plain {
					return s.Fail("duplicate key")
				}
				seen |= 1 << i
				return read(i)
			}
			if s.plain && len(key) == len(name) && bytes.EqualFold(key, []byte(name)) {
				return s.Fail("key in another case")
			}
		}
		return s.Skip()
	})
}

// Text reads a string and returns its contents, unescaped. The result aliases the input when
// the string is plain; copy it to keep it. A Plain scanner reads plain strings only: printable
// ASCII without escapes, which encoding/json returns byte for byte.
func (s *Scanner) Text() ([]byte, bool) {
	if s.Peek() != '"' {
		return nil, s.Fail("want a string")
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		if c := s.b[j]; notPlain[c] {
			if c == '"' {
				s.i = j + 1
				return s.b[start:j], true
			}
			if s.plain {
				return nil, s.Fail("not a plain string")
			}
			return s.escapedText()
		}
	}
	return nil, s.Fail("unterminated string")
}

// escapedText decodes a string with escapes or non-ASCII bytes as encoding/json does.
func (s *Scanner) escapedText() ([]byte, bool) {
	start := s.i
	j := start + 1
	for ; j < len(s.b); j++ {
		if s.b[j] == '\\' {
			j++
			continue
		}
		if s.b[j] == '"' {
			break
		}
	}
	if j >= len(s.b) {
		return nil, s.Fail("unterminated string")
	}
	var str string
	if err := json.Unmarshal(s.b[start:j+1], &str); err != nil {
		return nil, s.Fail(err.Error())
	}
	s.i = j + 1
	return []byte(str), true
}

// notPlain marks the bytes that end the plain run of a string: its closing quote, an escape,
// a control character (invalid), a byte of a multi-byte UTF-8 sequence.
var notPlain = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf
	}
	return t
}()

// stringSpecial marks the bytes Skip looks at inside a string: its closing quote, an escape,
// a control character (invalid).
var stringSpecial = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c == '"' || c == '\\' || c < 0x20
	}
	return t
}()

// Str reads a string as Text does, as a string.
func (s *Scanner) Str() (string, bool) {
	b, ok := s.Text()
	return string(b), ok
}

// Number reads a number (RFC 8259 grammar) and returns its text, aliasing the input.
func (s *Scanner) Number() ([]byte, bool) {
	s.Space()
	start, j := s.i, s.i
	digits := func() bool {
		k := j
		for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
			j++
		}
		return j > k
	}
	if j < len(s.b) && s.b[j] == '-' {
		j++
	}
	if j < len(s.b) && s.b[j] == '0' {
		j++
	} else if !digits() {
		return nil, s.Fail("want a number")
	}
	if j < len(s.b) && s.b[j] == '.' {
		j++
		if !digits() {
			return nil, s.Fail("want digits after '.'")
		}
	}
	if j < len(s.b) && (s.b[j] == 'e' || s.b[j] == 'E') {
		j++
		if j < len(s.b) && (s.b[j] == '+' || s.b[j] == '-') {
			j++
		}
		if !digits() {
			return nil, s.Fail("want digits in the exponent")
		}
	}
	s.i = j
	return s.b[start:j], true
}

// Float reads a number as encoding/json reads it into a float64.
func (s *Scanner) Float() (float64, bool) {
	n, ok := s.Number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return 0, s.failNumber(n, -1, errors.Unwrap(err).Error())
	}
	return v, true
}

// Int reads a number as encoding/json reads it into a signed integer of bits bits: an
// integer, in range.
func (s *Scanner) Int(bits int) (int64, bool) {
	n, ok := s.Number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(string(n), 10, bits)
	if err != nil {
		return 0, s.failNumber(n, bits, "")
	}
	return v, true
}

// Uint reads a number as encoding/json reads it into an unsigned integer of bits bits.
func (s *Scanner) Uint(bits int) (uint64, bool) {
	n, ok := s.Number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(string(n), 10, bits)
	if err != nil {
		if bits == 32 {
			return 0, s.failNumber(n, 0, "")
		}
		return 0, s.Fail(fmt.Sprintf("number %s is not an unsigned %d-bit integer", n, bits))
	}
	return v, true
}

// Skip reads any value without building it, checking that it is valid JSON. Its strings may
// hold escapes and any bytes encoding/json accepts, whatever the policy.
func (s *Scanner) Skip() bool {
	switch c := s.Peek(); {
	case c == '{':
		return s.Object(func([]byte) bool { return s.Skip() })
	case c == '[':
		return s.Array(s.Skip)
	case c == '"':
		return s.skipString()
	case c == 't' && s.literal("true"), c == 'f' && s.literal("false"), c == 'n' && s.literal("null"):
		return true
	case c == '-' || c >= '0' && c <= '9':
		_, ok := s.Number()
		return ok
	}
	return s.Fail("want a value")
}

func (s *Scanner) skipString() bool {
	for j := s.i + 1; j < len(s.b); j++ {
		c := s.b[j]
		if !stringSpecial[c] {
			continue
		}
		switch {
		case c == '"':
			s.i = j + 1
			return true
		case c < 0x20:
			s.i = j
			return s.Fail("control character in string")
		case c == '\\':
			j++
			if j >= len(s.b) {
				return s.Fail("unterminated string")
			}
			switch s.b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(s.b) {
					return s.Fail("unterminated string")
				}
				for _, h := range s.b[j+1 : j+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						s.i = j
						return s.Fail(`bad \u escape`)
					}
				}
				j += 4
			default:
				s.i = j
				return s.Fail("bad escape")
			}
		}
	}
	return s.Fail("unterminated string")
}

// Raw reads any value as Skip does and returns its text, aliasing the input.
func (s *Scanner) Raw() ([]byte, bool) {
	s.Space()
	start := s.i
	if !s.Skip() {
		return nil, false
	}
	return s.b[start:s.i], true
}

// Value reads any value as encoding/json decodes it into an any: map[string]any, []any,
// string, float64, bool or nil.
func (s *Scanner) Value() (any, bool) {
	switch c := s.Peek(); {
	case c == '{':
		m := map[string]any{}
		ok := s.Object(func(key []byte) bool {
			v, ok := s.Value()
			m[string(key)] = v
			return ok
		})
		return m, ok
	case c == '[':
		a := []any{}
		ok := s.Array(func() bool {
			v, ok := s.Value()
			a = append(a, v)
			return ok
		})
		return a, ok
	case c == '"':
		return s.Str()
	case c == 't' && s.literal("true"):
		return true, true
	case c == 'f' && s.literal("false"):
		return false, true
	case c == 'n' && s.literal("null"):
		return nil, true
	case c == '-' || c >= '0' && c <= '9':
		return s.Float()
	}
	return nil, s.Fail("want a value")
}
