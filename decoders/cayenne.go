package decoders

import (
	"context"
	"fmt"
	"strconv"
)

// CayenneLPP is the built-in decoder "cayenne-lpp" for Cayenne Low Power Payload: a sequence of
// channel (1 byte), type (1 byte), value (big endian) items. It knows the types of the myDevices
// specification (digital and analog I/O, luminosity, presence, temperature, humidity,
// accelerometer, barometer, gyrometer, GPS) and the widely used extended types (generic sensor,
// voltage, current, frequency, percentage, altitude, concentration, power, distance, energy,
// direction, unix time, colour, switch).
//
// Each item becomes data["<type>_<channel>"], named as The Things Stack names them
// (temperature_1, relative_humidity_2, gps_3), so dashboards built on TTS keep working; the
// accelerometer and gyrometer become {x, y, z}, GPS {latitude, longitude, altitude} and colour
// {r, g, b}. Readings carry the type's unit (°C, %, hPa, …). A channel and type repeated in one
// payload keeps the last value. An unknown type or a truncated value fails the whole payload.
type CayenneLPP struct{}

// Name implements Decoder.
func (CayenneLPP) Name() string { return "cayenne-lpp" }

// lppType describes one Cayenne LPP data type.
type lppType struct {
	name   string
	size   int     // bytes per value
	signed bool    // two's complement
	div    float64 // raw value / div = value in unit
	unit   string
	axes   []string // multi-value types: the field of each value (each size/len(axes) bytes)
}

var lppTypes = map[byte]lppType{
	0:   {name: "digital_in", size: 1, div: 1},
	1:   {name: "digital_out", size: 1, div: 1},
	2:   {name: "analog_in", size: 2, signed: true, div: 100},
	3:   {name: "analog_out", size: 2, signed: true, div: 100},
	100: {name: "generic_sensor", size: 4, div: 1},
	101: {name: "luminosity", size: 2, div: 1, unit: "lx"},
	102: {name: "presence", size: 1, div: 1},
	103: {name: "temperature", size: 2, signed: true, div: 10, unit: "°C"},
	104: {name: "relative_humidity", size: 1, div: 2, unit: "%"},
	113: {name: "accelerometer", size: 6, signed: true, div: 1000, unit: "G", axes: []string{"x", "y", "z"}},
	115: {name: "barometric_pressure", size: 2, div: 10, unit: "hPa"},
	116: {name: "voltage", size: 2, div: 100, unit: "V"},
	117: {name: "current", size: 2, div: 1000, unit: "A"},
	118: {name: "frequency", size: 4, div: 1, unit: "Hz"},
	120: {name: "percentage", size: 1, div: 1, unit: "%"},
	121: {name: "altitude", size: 2, signed: true, div: 1, unit: "m"},
	125: {name: "concentration", size: 2, div: 1, unit: "ppm"},
	128: {name: "power", size: 2, div: 1, unit: "W"},
	130: {name: "distance", size: 4, div: 1000, unit: "m"},
	131: {name: "energy", size: 4, div: 1000, unit: "kWh"},
	132: {name: "direction", size: 2, div: 1, unit: "°"},
	133: {name: "unix_time", size: 4, div: 1, unit: "s"},
	134: {name: "gyrometer", size: 6, signed: true, div: 100, unit: "°/s", axes: []string{"x", "y", "z"}},
	135: {name: "colour", size: 3, div: 1, axes: []string{"r", "g", "b"}},
	136: {name: "gps", size: 9, axes: []string{"latitude", "longitude", "altitude"}},
	142: {name: "switch", size: 1, div: 1},
}

// gps fields: latitude and longitude in 0.0001°, altitude in 0.01 m, 3 signed bytes each.
var gpsDiv = [3]float64{10000, 10000, 100}
var gpsUnit = [3]string{"°", "°", "m"}

// Decode implements Decoder.
func (CayenneLPP) Decode(_ context.Context, in *Input) (*Output, error) {
	data, units, err := decodeLPP(in.Bytes)
	if err != nil {
		return nil, &DecodeError{Decoder: "cayenne-lpp", Device: in.Device, Err: err}
	}
	readings := Flatten(data, in.RecvTime)
	for i := range readings {
		readings[i].Unit = units[readings[i].Metric]
	}
	return &Output{Data: data, Readings: readings}, nil
}

// decodeLPP parses a Cayenne LPP payload into data and the unit of each flattened metric.
func decodeLPP(b []byte) (map[string]any, map[string]string, error) {
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("%w: empty Cayenne LPP payload", ErrPayload)
	}
	data := map[string]any{}
	units := map[string]string{}
	for i := 0; i < len(b); {
		if i+2 > len(b) {
			return nil, nil, fmt.Errorf("%w: truncated item header at byte %d", ErrPayload, i)
		}
		ch, typ := b[i], b[i+1]
		t, ok := lppTypes[typ]
		if !ok {
			return nil, nil, fmt.Errorf("%w: unknown Cayenne LPP type %d at byte %d", ErrPayload, typ, i+1)
		}
		i += 2
		if i+t.size > len(b) {
			return nil, nil, fmt.Errorf("%w: %s on channel %d needs %d bytes at byte %d, %d left", ErrPayload, t.name, ch, t.size, i, len(b)-i)
		}
		key := t.name + "_" + strconv.Itoa(int(ch))
		v := b[i : i+t.size]
		i += t.size
		if len(t.axes) == 0 {
			data[key] = float64(beInt(v, t.signed)) / t.div
			units[key] = t.unit
			continue
		}
		n := t.size / len(t.axes)
		obj := make(map[string]any, len(t.axes))
		for j, axis := range t.axes {
			raw := beInt(v[j*n:(j+1)*n], t.signed || t.name == "gps")
			switch t.name {
			case "gps":
				obj[axis] = float64(raw) / gpsDiv[j]
				units[key+"."+axis] = gpsUnit[j]
			default:
				obj[axis] = float64(raw) / t.div
				units[key+"."+axis] = t.unit
			}
		}
		data[key] = obj
	}
	return data, units, nil
}

// beInt reads a big-endian integer of 1 to 4 bytes, sign-extended when signed.
func beInt(b []byte, signed bool) int64 {
	var u uint64
	for _, c := range b {
		u = u<<8 | uint64(c)
	}
	if signed {
		shift := 64 - 8*len(b)
		return int64(u<<shift) >> shift
	}
	return int64(u)
}
