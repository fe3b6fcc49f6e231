package hooks

import (
	"hash/fnv"
	"math"

	"github.com/sluice-iot/sluice"
)

// stateOf is what the filter remembers of a kept reading, in the one float64 a series holds
// (and its snapshot saves): the value of a number or boolean; for a text, a 62-bit hash of it
// (never a NaN's bit pattern); for a location, latitude and longitude in units of 1e-7 degree
// (about 1 cm) packed as two int32.
func stateOf(r *sluice.Reading) float64 {
	switch r.Type {
	case sluice.TypeText:
		h := fnv.New64a()
		h.Write([]byte(r.Text))
		return math.Float64frombits(h.Sum64() &^ (1 << 62)) // exponent never all ones
	case sluice.TypeLocation:
		if r.Location == nil {
			return 0
		}
		return packLocation(r.Location.Lat, r.Location.Lon)
	}
	return r.Value
}

func packLocation(lat, lon float64) float64 {
	la := uint32(int32(math.Round(max(-90, min(90, lat)) * 1e7)))
	lo := uint32(int32(math.Round(max(-180, min(180, lon)) * 1e7)))
	return math.Float64frombits(uint64(la)<<32 | uint64(lo))
}

func unpackLocation(f float64) (lat, lon float64) {
	b := math.Float64bits(f)
	return float64(int32(uint32(b>>32))) / 1e7, float64(int32(uint32(b))) / 1e7
}

// earthRadius is the mean radius of the Earth in metres (IUGG).
const earthRadius = 6_371_008.8

// distance is the great-circle (haversine) distance in metres between two packed locations.
func distance(a, b float64) float64 {
	lat1, lon1 := unpackLocation(a)
	lat2, lon2 := unpackLocation(b)
	return haversine(lat1, lon1, lat2, lon2)
}

func haversine(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	dLat, dLon := (lat2-lat1)*rad, (lon2-lon1)*rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadius * math.Asin(math.Sqrt(min(1, h)))
}
