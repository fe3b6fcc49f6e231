package decoders

import (
	"bytes"
	"strconv"
)

// jsonReader reads the plain subset of JSON that network servers write, in one pass and
// without reflection: the fast path of envelope decoding. Every method reports ok=false on
// anything outside that subset (invalid JSON, null where a value is wanted, escapes or non-ASCII
// bytes in a string it returns, numbers that do not fit, nesting deeper than jsonMaxDepth), and
// the caller then decodes the whole event with encoding/json instead, which gives the result or
// error encoding/json always gave. So the reader never has to explain a problem, only spot it.
type jsonReader struct {
	b     []byte
	i     int
	depth int
}

// jsonMaxDepth bounds the nesting the reader follows; deeper events take the encoding/json path.
const jsonMaxDepth = 64

func (r *jsonReader) space() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// peek is the next byte that is not white space; 0 at the end.
func (r *jsonReader) peek() byte {
	r.space()
	if r.i < len(r.b) {
		return r.b[r.i]
	}
	return 0
}

// end reports whether only white space is left.
func (r *jsonReader) end() bool {
	r.space()
	return r.i == len(r.b)
}

// object reads an object, calling field for each member with the reader at its value; field
// must read the value and return ok.
func (r *jsonReader) object(field func(key []byte) bool) bool {
	if r.peek() != '{' || r.depth >= jsonMaxDepth {
		return false
	}
	r.i++
	r.depth++
	defer func() { r.depth-- }()
	if r.peek() == '}' {
		r.i++
		return true
	}
	for {
		if r.peek() != '"' {
			return false
		}
		key, ok := r.plainString()
		if !ok || r.peek() != ':' {
			return false
		}
		r.i++
		if !field(key) {
			return false
		}
		switch r.peek() {
		case ',':
			r.i++
		case '}':
			r.i++
			return true
		default:
			return false
		}
	}
}

// array reads an array, calling elem with the reader at each element.
func (r *jsonReader) array(elem func() bool) bool {
	if r.peek() != '[' || r.depth >= jsonMaxDepth {
		return false
	}
	r.i++
	r.depth++
	defer func() { r.depth-- }()
	if r.peek() == ']' {
		r.i++
		return true
	}
	for {
		if !elem() {
			return false
		}
		switch r.peek() {
		case ',':
			r.i++
		case ']':
			r.i++
			return true
		default:
			return false
		}
	}
}

// plainString reads a string of printable ASCII without escapes, which encoding/json would
// return byte for byte. The slice aliases the input.
func (r *jsonReader) plainString() ([]byte, bool) {
	if r.peek() != '"' {
		return nil, false
	}
	start := r.i + 1
	for j := start; j < len(r.b); j++ {
		switch c := r.b[j]; {
		case c == '"':
			r.i = j + 1
			return r.b[start:j], true
		case c < 0x20 || c >= 0x80 || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

func (r *jsonReader) str() (string, bool) {
	s, ok := r.plainString()
	return string(s), ok
}

func (r *jsonReader) boolean() (v, ok bool) {
	switch {
	case r.literal("true"):
		return true, true
	case r.literal("false"):
		return false, true
	}
	return false, false
}

func (r *jsonReader) literal(word string) bool {
	if r.peek() != word[0] || !bytes.HasPrefix(r.b[r.i:], []byte(word)) {
		return false
	}
	r.i += len(word)
	return true
}

// number reads a number (RFC 8259 grammar) and returns its text.
func (r *jsonReader) number() ([]byte, bool) {
	r.space()
	start, j := r.i, r.i
	digits := func() bool {
		k := j
		for j < len(r.b) && r.b[j] >= '0' && r.b[j] <= '9' {
			j++
		}
		return j > k
	}
	if j < len(r.b) && r.b[j] == '-' {
		j++
	}
	if j < len(r.b) && r.b[j] == '0' {
		j++
	} else if !digits() {
		return nil, false
	}
	if j < len(r.b) && r.b[j] == '.' {
		j++
		if !digits() {
			return nil, false
		}
	}
	if j < len(r.b) && (r.b[j] == 'e' || r.b[j] == 'E') {
		j++
		if j < len(r.b) && (r.b[j] == '+' || r.b[j] == '-') {
			j++
		}
		if !digits() {
			return nil, false
		}
	}
	r.i = j
	return r.b[start:j], true
}

// float reads a number as encoding/json reads it into a float64.
func (r *jsonReader) float() (float64, bool) {
	n, ok := r.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(n), 64)
	return v, err == nil
}

// int reads a number as encoding/json reads it into an int: integers only, in range.
func (r *jsonReader) int() (int, bool) {
	n, ok := r.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(string(n), 10, strconv.IntSize)
	return int(v), err == nil
}

// uint reads a number as encoding/json reads it into an unsigned integer of bits bits.
func (r *jsonReader) uint(bits int) (uint64, bool) {
	n, ok := r.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(string(n), 10, bits)
	return v, err == nil
}

// raw reads any value and returns its text, aliasing the input.
func (r *jsonReader) raw() ([]byte, bool) {
	r.space()
	start := r.i
	if !r.skip() {
		return nil, false
	}
	return r.b[start:r.i], true
}

// skip reads any value, checking it is valid JSON. Its strings may hold escapes and any bytes
// encoding/json accepts.
func (r *jsonReader) skip() bool {
	switch c := r.peek(); {
	case c == '{':
		return r.object(func([]byte) bool { return r.skip() })
	case c == '[':
		return r.array(r.skip)
	case c == '"':
		return r.skipString()
	case c == 't':
		return r.literal("true")
	case c == 'f':
		return r.literal("false")
	case c == 'n':
		return r.literal("null")
	}
	_, ok := r.number()
	return ok
}

func (r *jsonReader) skipString() bool {
	for j := r.i + 1; j < len(r.b); j++ {
		switch c := r.b[j]; {
		case c == '"':
			r.i = j + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			j++
			if j >= len(r.b) {
				return false
			}
			switch r.b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(r.b) {
					return false
				}
				for _, h := range r.b[j+1 : j+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				j += 4
			default:
				return false
			}
		}
	}
	return false
}

// fields reads an object whose members named in names (at most 64) go to read(index of the
// name), with the reader at the value; it skips the others. A name given twice, or a key
// encoding/json would match to a name only case-insensitively, needs encoding/json.
func (r *jsonReader) fields(names []string, read func(i int) bool) bool {
	var seen uint64
	return r.object(func(key []byte) bool {
		for i, name := range names {
			if string(key) == name {
				if seen&(1<<i) != 0 {
					return false
				}
				seen |= 1 << i
				return read(i)
			}
			if len(key) == len(name) && bytes.EqualFold(key, []byte(name)) {
				return false
			}
		}
		return r.skip()
	})
}

// isString reads a string it has no use for but encoding/json would type-check.
func (r *jsonReader) isString() bool {
	_, ok := r.plainString()
	return ok
}

// value reads any value as encoding/json decodes it into an any: map[string]any, []any,
// string, float64, bool or nil.
func (r *jsonReader) value() (any, bool) {
	switch c := r.peek(); {
	case c == '{':
		m := map[string]any{}
		ok := r.object(func(key []byte) bool {
			v, ok := r.value()
			m[string(key)] = v
			return ok
		})
		return m, ok
	case c == '[':
		a := []any{}
		ok := r.array(func() bool {
			v, ok := r.value()
			a = append(a, v)
			return ok
		})
		return a, ok
	case c == '"':
		return r.str()
	case c == 't' || c == 'f':
		return r.boolean()
	case c == 'n':
		return nil, r.literal("null")
	}
	return r.float()
}
