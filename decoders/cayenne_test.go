package decoders

import (
	"context"
	"encoding/hex"
	"errors"
	"github.com/sluice-iot/sluice"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCayenneLPP(t *testing.T) {
	tests := []struct {
		name, hex, data string
		units           map[string]string
	}{
		// The examples of the Cayenne LPP specification.
		{"two temperatures", "03 67 01 10 05 67 00 FF", `{"temperature_3":27.2,"temperature_5":25.5}`,
			map[string]string{"temperature_3": "°C", "temperature_5": "°C"}},
		{"negative temperature", "01 67 FF D7", `{"temperature_1":-4.1}`, nil},
		{"accelerometer", "06 71 04 D2 FB 2E 00 00", `{"accelerometer_6":{"x":1.234,"y":-1.234,"z":0}}`,
			map[string]string{"accelerometer_6.x": "G"}},
		{"gps", "01 88 06 76 5F F2 96 0A 00 03 E8", `{"gps_1":{"altitude":10,"latitude":42.3519,"longitude":-87.9094}}`,
			map[string]string{"gps_1": ""}},
		{"digital and analog", "01 00 01 02 01 FF 03 02 FF 38 04 03 01 F4", `{"analog_in_3":-2,"analog_out_4":5,"digital_in_1":1,"digital_out_2":255}`, nil},
		{"luminosity presence humidity barometer", "01 65 01 F4 02 66 01 03 68 61 04 73 27 7F",
			`{"barometric_pressure_4":1011.1,"luminosity_1":500,"presence_2":1,"relative_humidity_3":48.5}`,
			map[string]string{"relative_humidity_3": "%", "barometric_pressure_4": "hPa", "luminosity_1": "lx"}},
		{"gyrometer", "02 86 00 64 FF 9C 00 00", `{"gyrometer_2":{"x":1,"y":-1,"z":0}}`, map[string]string{"gyrometer_2.z": "°/s"}},
		{"extended types", "01 64 00 01 00 00 02 74 01 2C 03 75 03 E8 04 76 00 00 C3 50 05 78 64 06 79 FF 9C 07 7D 01 90",
			`{"altitude_6":-100,"concentration_7":400,"current_3":1,"frequency_4":50000,"generic_sensor_1":65536,"percentage_5":100,"voltage_2":3}`,
			map[string]string{"voltage_2": "V", "current_3": "A", "concentration_7": "ppm"}},
		{"more extended types", "01 80 00 64 02 82 00 00 03 E8 03 83 00 00 30 39 04 84 01 68 05 85 65 00 00 00 06 87 FF 80 00 07 8E 01",
			`{"colour_6":{"b":0,"g":128,"r":255},"direction_4":360,"distance_2":1,"energy_3":12.345,"power_1":100,"switch_7":1,"unix_time_5":1694498816}`,
			map[string]string{"energy_3": "kWh", "power_1": "W", "colour_6.r": ""}},
		{"repeated channel keeps the last", "01 67 00 0A 01 67 00 14", `{"temperature_1":2}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := CayenneLPP{}.Decode(context.Background(), &Input{Bytes: mustHex(t, tt.hex), RecvTime: recv})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got := jsonOf(t, out.Data); got != tt.data {
				t.Errorf("data = %s, want %s", got, tt.data)
			}
			units := map[string]string{}
			for _, r := range out.Readings {
				units[r.Metric] = r.Unit
				if !r.Time.Equal(recv) {
					t.Errorf("reading %s time = %v, want %v", r.Metric, r.Time, recv)
				}
			}
			for _, r := range out.Readings {
				if r.Metric == "gps_1" {
					if l := r.Location; r.Type != sluice.TypeLocation || l == nil || l.Lat != 42.3519 || l.Lon != -87.9094 || l.Alt == nil || *l.Alt != 10 {
						t.Errorf("gps_1 = %+v (location %+v), want the location 42.3519, -87.9094, 10 m", r, l)
					}
				}
			}
			for metric, want := range tt.units {
				if got, ok := units[metric]; !ok || got != want {
					t.Errorf("unit of %s = %q (present %v), want %q", metric, got, ok, want)
				}
			}
		})
	}
}

func TestCayenneLPPErrors(t *testing.T) {
	tests := []struct{ name, hex, want string }{
		{"empty", "", "invalid payload: empty Cayenne LPP payload"},
		{"unknown type", "01 FF 00", "invalid payload: unknown Cayenne LPP type 255 at byte 1"},
		{"truncated value", "01 67 00", "invalid payload: temperature on channel 1 needs 2 bytes at byte 2, 1 left"},
		{"truncated header", "01 67 00 10 02", "invalid payload: truncated item header at byte 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CayenneLPP{}.Decode(context.Background(), &Input{Bytes: mustHex(t, tt.hex), Device: "d"})
			var de *DecodeError
			if !errors.As(err, &de) || !errors.Is(err, ErrPayload) {
				t.Fatalf("err = %v, want a *DecodeError wrapping ErrPayload", err)
			}
			if want := "decoder cayenne-lpp, device d: " + tt.want; err.Error() != want {
				t.Errorf("err = %q, want %q", err, want)
			}
		})
	}
}

func TestRaw(t *testing.T) {
	out, err := Raw{}.Decode(context.Background(), &Input{Bytes: []byte{0xde, 0xad, 0xbe, 0xef}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := jsonOf(t, out.Data), `{"base64":"3q2+7w==","hex":"deadbeef","size":4}`; got != want {
		t.Errorf("data = %s, want %s", got, want)
	}
	if out.Readings == nil || len(out.Readings) != 0 {
		t.Errorf("readings = %#v, want an empty list", out.Readings)
	}
}

func TestSetBuiltins(t *testing.T) {
	s := NewSet()
	if got, want := strings.Join(s.Names(), ","), "cayenne-lpp,json,raw"; got != want {
		t.Errorf("Names() = %s, want %s", got, want)
	}
}

func FuzzCayenneLPP(f *testing.F) {
	for _, s := range []string{"03670110056700FF", "06 71 04 D2 FB 2E 00 00", "018806765ff2960a0003e8", "01", ""} {
		f.Add(mustHex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := CayenneLPP{}.Decode(context.Background(), &Input{Bytes: b})
		if err != nil {
			if !errors.Is(err, ErrPayload) {
				t.Fatalf("err = %v, want ErrPayload", err)
			}
			return
		}
		if len(out.Data) == 0 || len(out.Data) > len(b)/3 {
			t.Fatalf("%d items from %d bytes", len(out.Data), len(b))
		}
		for _, r := range out.Readings {
			if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) || !utf8.ValidString(r.Metric) {
				t.Fatalf("bad reading %+v", r)
			}
		}
	})
}

func FuzzJSON(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"time":"2026-01-01T00:00:00Z","t":{"x":[1,true,"s"]}}`, `{"time":1e12}`, `[]`, `{`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := JSON{}.Decode(context.Background(), &Input{Bytes: b, RecvTime: recv})
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v (%T), want *DecodeError", err, err)
			}
			return
		}
		if out.Data == nil {
			t.Fatal("nil data without an error")
		}
		for _, r := range out.Readings {
			if r.Metric == "time" || math.IsNaN(r.Value) {
				t.Fatalf("bad reading %+v", r)
			}
		}
	})
}
