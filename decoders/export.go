package decoders

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"
)

// maxDepth bounds the nesting of decoded output.
const maxDepth = 64

// plain converts a value freshly exported from goja (maps and slices are modified in place) into the plain JSON shapes the rest of Sluice
// expects (map[string]any, []any, float64, string, bool, nil), the way JSON.stringify would
// see it: NaN and ±Infinity become null, dates become RFC 3339 strings, functions and symbols
// become null, typed arrays become arrays of numbers. budget is the room left in bytes of
// (approximate) JSON; when it runs out, plain fails with ErrOutputTooLarge, which also bounds
// the work on cyclic objects.
func plain(v any, budget *int, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d levels", ErrInvalidOutput, maxDepth)
	}
	*budget -= 4
	if *budget < 0 {
		return nil, ErrOutputTooLarge
	}
	switch x := v.(type) {
	case nil:
		return nil, nil
	case bool:
		return x, nil
	case int64:
		*budget -= 16
		return float64(x), nil
	case float64:
		*budget -= 20
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, nil
		}
		return x, nil
	case string:
		*budget -= len(x)
		if *budget < 0 {
			return nil, ErrOutputTooLarge
		}
		return x, nil
	case time.Time:
		*budget -= 30
		return x.UTC().Format(time.RFC3339Nano), nil
	case map[string]any: // converted in place: Export made it for us alone
		for k, e := range x {
			*budget -= len(k) + 4
			p, err := plain(e, budget, depth+1)
			if err != nil {
				return nil, err
			}
			x[k] = p
		}
		return x, nil
	case []any:
		for i, e := range x {
			p, err := plain(e, budget, depth+1)
			if err != nil {
				return nil, err
			}
			x[i] = p
		}
		return x, nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array: // typed arrays and other Go slices
		out := make([]any, rv.Len())
		for i := range out {
			p, err := plain(rv.Index(i).Interface(), budget, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = p
		}
		return out, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32:
		return float64(rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(rv.Uint()), nil
	case reflect.Float32:
		return plain(rv.Float(), budget, depth)
	case reflect.String:
		return plain(rv.String(), budget, depth)
	case reflect.Map: // e.g. a JS Map exported as map[any]any
		out := map[string]any{}
		iter := rv.MapRange()
		for iter.Next() {
			k := fmt.Sprint(iter.Key().Interface())
			*budget -= len(k) + 4
			p, err := plain(iter.Value().Interface(), budget, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = p
		}
		return out, nil
	}
	return nil, nil // functions, symbols and other values JSON cannot carry
}

// Bounds of a warnings or errors list: they travel on every uplink message.
const (
	maxMessages      = 64
	maxMessageLength = 1 << 10
)

// stringList reads a warnings or errors array, at most maxMessages entries of at most
// maxMessageLength bytes; entries that are not strings are formatted.
func stringList(v any) []string {
	var items []any
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		items = x
	default:
		items = []any{x}
	}
	if len(items) == 0 {
		return nil
	}
	out := make([]string, 0, min(len(items), maxMessages+1))
	for i, e := range items {
		if i == maxMessages {
			out = append(out, fmt.Sprintf("(%d more)", len(items)-maxMessages))
			break
		}
		var s string
		switch x := e.(type) {
		case string:
			s = x
		case float64:
			s = strconv.FormatFloat(x, 'g', -1, 64)
		default:
			s = fmt.Sprint(e)
		}
		if len(s) > maxMessageLength {
			s = s[:maxMessageLength] + "…"
		}
		out = append(out, s)
	}
	return out
}
