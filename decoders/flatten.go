package decoders

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-iot/sluice"
)

// Flatten turns the numbers and booleans of a decoded object into readings at time t: nested
// objects are joined with dots ("env.temp"), array elements are indexed ("values.0"), booleans
// become 1 or 0, and everything else (strings, nulls) stays in the data only. Readings come out
// sorted by metric, so the same object always yields the same slice.
func Flatten(data map[string]any, t time.Time) []sluice.Reading {
	out := make([]sluice.Reading, 0, len(data))
	flatten(&out, "", data, t)
	slices.SortFunc(out, func(a, b sluice.Reading) int { return strings.Compare(a.Metric, b.Metric) })
	return out
}

func flatten(out *[]sluice.Reading, prefix string, v any, t time.Time) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			flatten(out, join(prefix, k), e, t)
		}
	case []any:
		for i, e := range x {
			flatten(out, join(prefix, strconv.Itoa(i)), e, t)
		}
	case float64:
		*out = append(*out, sluice.Reading{Metric: prefix, Value: x, Time: t})
	case int64:
		*out = append(*out, sluice.Reading{Metric: prefix, Value: float64(x), Time: t})
	case int:
		*out = append(*out, sluice.Reading{Metric: prefix, Value: float64(x), Time: t})
	case bool:
		val := 0.0
		if x {
			val = 1
		}
		*out = append(*out, sluice.Reading{Metric: prefix, Value: val, Time: t})
	}
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}
