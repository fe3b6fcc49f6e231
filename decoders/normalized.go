package decoders

import (
	"sort"
	"time"

	"github.com/sluice-iot/sluice"
)

// normalizedUnits are the units of The Things Stack normalized payload schema, by field path.
// Readings from normalizeUplink take these names and units.
var normalizedUnits = map[string]string{
	"air.temperature":        "°C",
	"air.relativeHumidity":   "%",
	"air.pressure":           "hPa",
	"air.co2":                "ppm",
	"air.lightIntensity":     "lx",
	"wind.speed":             "m/s",
	"wind.direction":         "°",
	"soil.depth":             "cm",
	"soil.moisture":          "%",
	"soil.temperature":       "°C",
	"soil.ec":                "dS/m",
	"soil.n":                 "ppm",
	"soil.p":                 "ppm",
	"soil.k":                 "ppm",
	"water.temperature":      "°C",
	"position.latitude":      "°",
	"position.longitude":     "°",
	"position.altitude":      "m",
	"battery":                "V",
	"metering.water.total":   "L",
	"rain.cumulative":        "mm",
	"rain.intensity":         "mm/h",
	"action.motion.count":    "",
	"action.motion.detected": "",
	"water.leak":             "",
}

// normalizedReadings flattens normalized measurements; a measurement's "time" (RFC 3339) sets
// the time of its readings, recv otherwise.
func normalizedReadings(ms []map[string]any, recv time.Time) []sluice.Reading {
	var out []sluice.Reading
	for _, m := range ms {
		t := recv
		if s, ok := m["time"].(string); ok {
			if parsed, err := time.Parse(time.RFC3339Nano, s); err == nil {
				t = parsed.UTC()
			}
		}
		for _, r := range Flatten(m, t) {
			if r.Metric == "time" {
				continue
			}
			r.Unit = normalizedUnits[r.Metric]
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Metric != out[j].Metric {
			return out[i].Metric < out[j].Metric
		}
		return out[i].Time.Before(out[j].Time)
	})
	return out
}
