package decoders

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-iot/sluice"
)

// Flatten turns the values of a decoded object into readings at time t: nested objects are
// joined with dots ("env.temp"), array elements are indexed ("values.0"). Numbers become
// number readings, booleans boolean readings, strings text readings, and an object with numeric
// "latitude" and "longitude" (and optionally "altitude") a location reading named for the object
// (its other fields are flattened beside it); nulls stay in the data only. Readings come out
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
		if lat, lon, alt, ok := latLon(x); ok {
			name := prefix
			if name == "" {
				name = "location"
			}
			*out = append(*out, sluice.LocationReading(name, lat, lon, alt, t))
			for k, e := range x {
				if k != "latitude" && k != "longitude" && (k != "altitude" || alt == nil) {
					flatten(out, join(prefix, k), e, t)
				}
			}
			return
		}
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
		*out = append(*out, sluice.BoolReading(prefix, x, t))
	case string:
		*out = append(*out, sluice.TextReading(prefix, x, t))
	}
}

// latLon reads an object {latitude, longitude[, altitude]} whose fields are numbers.
func latLon(m map[string]any) (lat, lon float64, alt *float64, ok bool) {
	if lat, ok = number(m["latitude"]); !ok {
		return 0, 0, nil, false
	}
	if lon, ok = number(m["longitude"]); !ok {
		return 0, 0, nil, false
	}
	if a, ok := number(m["altitude"]); ok {
		alt = &a
	}
	return lat, lon, alt, true
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	}
	return 0, false
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}
