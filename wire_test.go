package sluice

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func fullUplink() *Uplink {
	port, cnt := 2, uint32(4_000_000_000)
	t0 := time.Date(2026, 11, 26, 13, 4, 5, 123456789, time.UTC)
	return &Uplink{
		ID: "3f9a", Tenant: "acme", Device: "lht65-01", Topic: "application/x/device/a840/event/up",
		ReceivedAt: t0, Decoder: "dragino/lht65", FPort: &port, FCnt: &cnt,
		Data: map[string]any{
			"temperature": 21.5, "tiny": 1e-9, "huge": 1.5e22, "neg": -0.0001, "int": 3.0,
			"status": "ok <&> \"quoted\" \\ é \u2028 \x01", "on": true, "off": false, "none": nil,
			"nested": map[string]any{"a": []any{1.0, "b", map[string]any{}, []any{}}},
		},
		Readings: []Reading{
			{Metric: "temperature", Value: 21.5, Unit: "°C", Time: t0},
			{Metric: "humidity", Value: 0, Time: t0.In(time.FixedZone("x", 3600))},
		},
		Suppressed: []Reading{{Metric: "battery", Value: 3.061, Unit: "V", Time: t0}},
		Warnings:   []string{"probe unplugged", "<b>"},
		Class:      "standard",
		Tags:       map[string]string{"site": "north", "floor": "2"},
	}
}

// The hand-written encoder writes exactly what encoding/json writes: backends read this.
func TestEncodeUplinkMatchesEncodingJSON(t *testing.T) {
	for name, u := range map[string]*Uplink{
		"full":    fullUplink(),
		"minimal": {ID: "x", Tenant: "t", Device: "d"},
		"empty readings": {ID: "x", Tenant: "t", Device: "d", Readings: []Reading{},
			Data: map[string]any{}, Warnings: []string{}, Tags: map[string]string{}},
		"typed":    typedUplink(),
		"bad utf8": {ID: "x\xff", Tenant: "t", Device: "d\xc3", Readings: []Reading{{Metric: "m\x00"}}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := EncodeUplink(u)
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(u)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// Every field of Uplink and Reading is known to the hand-written codec: a field added to the
// struct without the codec would be silently dropped from the wire.
func TestWireCodecKnowsEveryField(t *testing.T) {
	known := map[string]bool{"v": true, "id": true, "tenant": true, "device": true, "topic": true,
		"received_at": true, "decoder": true, "f_port": true, "f_cnt": true, "data": true, "readings": true,
		"suppressed": true, "warnings": true, "class": true, "tags": true,
		"metric": true, "type": true, "value": true, "text": true, "location": true, "unit": true, "time": true}
	for _, typ := range []reflect.Type{reflect.TypeOf(Uplink{}), reflect.TypeOf(Reading{})} {
		for i := 0; i < typ.NumField(); i++ {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if !known[name] {
				t.Errorf("%s.%s (json %q) is not written by appendUplink nor read by decodeUplink (wire_encode.go, wire_decode.go)",
					typ.Name(), typ.Field(i).Name, name)
			}
		}
	}
}

func TestDecodeUplinkMatchesEncodingJSON(t *testing.T) {
	u := fullUplink()
	b, err := EncodeUplink(u)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeUplink(b)
	if err != nil {
		t.Fatal(err)
	}
	var want Uplink
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("got  %+v\nwant %+v", *got, want)
	}
	// Whitespace, unknown keys, nulls and escapes as other writers may produce them.
	in := ` { "v" : 1 , "id":"a\u00e9\n", "tenant":"t","device":"d", "future": {"x":[1,2,{"y":null}]},
		"f_port": null, "data": {"k": [true, false, null, -1.5e3, "s"]}, "readings": [ {"metric":"m","value":-0.5,
		"time":"2026-01-02T03:04:05.5+02:00", "extra": "x"} ], "warnings": [], "tags": null } `
	got, err = DecodeUplink([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want = Uplink{}
	if err := json.Unmarshal([]byte(in), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("got  %+v\nwant %+v", *got, want)
	}
}

// DecodeUplinkForStore gives what DecodeUplink gives, less what a sink does not store.
func TestDecodeUplinkForStore(t *testing.T) {
	b, err := EncodeUplink(fullUplink())
	if err != nil {
		t.Fatal(err)
	}
	full, err := DecodeUplink(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeUplinkForStore(b)
	if err != nil {
		t.Fatal(err)
	}
	want := *full
	want.Data, want.Suppressed, want.Warnings, want.Tags, want.Topic = nil, nil, nil, nil, ""
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("got  %+v\nwant %+v", *got, want)
	}
	for _, in := range []string{`{"v":1,"tenant":"t","device":"d","data":{"a":[1,}}`, `{"v":1,"tenant":"t","device":"d","tags":{"a":"b}`} {
		if _, err := DecodeUplinkForStore([]byte(in)); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
}

func TestWireErrors(t *testing.T) {
	u := &Uplink{ID: "x", Tenant: "t", Device: "d", Readings: []Reading{{Metric: "m", Value: math.NaN()}}}
	if _, err := EncodeUplink(u); err == nil || !strings.Contains(err.Error(), `encode uplink "x": json: unsupported value: NaN`) {
		t.Errorf("NaN: got %v", err)
	}
	for in, want := range map[string]string{
		``:                                  "decode uplink: invalid JSON at byte 0: want an object",
		`{"v":1,"id":"x"`:                   "decode uplink: invalid JSON at byte 15: want ',' or '}'",
		`{"v":1.5}`:                         "decode uplink: invalid JSON at byte 8: number 1.5 is not an integer of 64 bits",
		`{"v":1,"tenant":"t","device":""}`:  `decode uplink: uplink "" has no device`,
		`{"v":3,"tenant":"t","device":"d"}`: "decode uplink: unsupported wire version 3 (want 1 or 2)",
		`{"v":2,"tenant":"t","device":"d","readings":[{"metric":"m","type":"colour"}]}`: `decode uplink: uplink "": reading "m" has unknown type "colour"`,
		`{"v":1,"readings":[{"value":01}]}`:                                             "decode uplink: invalid JSON at byte 29: want ',' or '}'",
		`{"v":1,"readings":[{"time":"yesterday"}]}`:                                     `decode uplink: bad time before byte 38: parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"`,
		`{"v":1} x`:                 "decode uplink: invalid JSON at byte 8: data after the top-level value",
		"{\"v\":1,\"id\":\"\x01\"}": "decode uplink: invalid JSON at byte 12: invalid character '\\x01' in string literal",
	} {
		if _, err := DecodeUplink([]byte(in)); err == nil || err.Error() != want {
			t.Errorf("%s:\n got %v\nwant %s", in, err, want)
		}
	}
}

// Whatever the bytes, decoding never panics, and what decodes re-encodes to what
// encoding/json would write for the same value.
func FuzzDecodeUplink(f *testing.F) {
	b, _ := EncodeUplink(fullUplink())
	f.Add(b)
	b, _ = EncodeUplink(typedUplink())
	f.Add(b)
	f.Add([]byte(`{"v":1,"tenant":"t","device":"d","readings":null,"data":{"a":[1,{"b":"\u00e9"}]}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		DecodeUplinkForStore(in) // must not panic
		u, err := DecodeUplink(in)
		if err != nil {
			return
		}
		got, err := EncodeUplink(u)
		if err != nil {
			return // NaN cannot arrive through JSON, but a huge exponent may overflow
		}
		want, err := json.Marshal(u)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("re-encoding differs:\n got %s\nwant %s", got, want)
		}
	})
}

func BenchmarkEncodeUplink(b *testing.B) {
	u := benchUplink()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeUplink(u); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeUplinkForStore(b *testing.B) {
	data, _ := EncodeUplink(benchUplink())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeUplinkForStore(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeUplink(b *testing.B) {
	data, _ := EncodeUplink(benchUplink())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeUplink(data); err != nil {
			b.Fatal(err)
		}
	}
}

// benchUplink is what the json decoder makes of `sluice bench`'s payload.
func benchUplink() *Uplink {
	t0 := time.Date(2026, 11, 26, 13, 4, 5, 123456000, time.UTC)
	return &Uplink{ID: "0c5d5e4f0a6b4c4d9e8f7a6b5c4d3e2f", Tenant: "bench", Device: "bench-0001",
		Topic: "sensors/bench-0001/up", ReceivedAt: t0, Decoder: "json",
		Data: map[string]any{"temperature": 21.37, "humidity": 45.2, "pressure": 1013.25, "battery": 3.61,
			"time": "2026-11-26T13:04:05.123456Z"},
		Readings: []Reading{{Metric: "battery", Value: 3.61, Time: t0}, {Metric: "humidity", Value: 45.2, Time: t0},
			{Metric: "pressure", Value: 1013.25, Time: t0}, {Metric: "temperature", Value: 21.37, Time: t0}}}
}

// The reflection-based encoding/json, for comparison with the hand-written codec.
func BenchmarkEncodeUplinkEncodingJSON(b *testing.B) {
	u := benchUplink()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(u); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeUplinkEncodingJSON(b *testing.B) {
	data, _ := EncodeUplink(benchUplink())
	b.ReportAllocs()
	for b.Loop() {
		var u Uplink
		if err := json.Unmarshal(data, &u); err != nil {
			b.Fatal(err)
		}
	}
}

func typedUplink() *Uplink {
	t0 := time.Date(2026, 11, 26, 13, 4, 5, 0, time.UTC)
	alt := 312.5
	u := fullUplink()
	u.Readings = append(u.Readings,
		TextReading("battery_status", "Good <ok>", t0),
		BoolReading("door_open", true, t0),
		BoolReading("alarm", false, t0),
		LocationReading("position", 52.3731, 4.8922, &alt, t0),
		LocationReading("lora.location", -33.9, 151.2, nil, t0),
	)
	u.Suppressed = append(u.Suppressed, TextReading("firmware", "1.2.3", t0))
	return u
}

// A version 1 message, as the encoder wrote it before typed readings existed, still reads, and a
// numeric-only uplink is still written byte for byte as version 1.
func TestWireVersion1StillReads(t *testing.T) {
	const v1 = `{"v":1,"id":"3f9a","tenant":"acme","device":"lht65-01","topic":"application/x/device/a840/event/up","received_at":"2026-11-26T13:04:05.123456789Z","decoder":"dragino/lht65","f_port":2,"f_cnt":4000000000,"data":{"huge":1.5e+22,"int":3,"neg":-0.0001,"nested":{"a":[1,"b",{},[]]},"none":null,"off":false,"on":true,"status":"ok \u003c\u0026\u003e \"quoted\" \\ é \u2028 \u0001","temperature":21.5,"tiny":1e-9},"readings":[{"metric":"temperature","value":21.5,"unit":"°C","time":"2026-11-26T13:04:05.123456789Z"},{"metric":"humidity","value":0,"time":"2026-11-26T14:04:05.123456789+01:00"}],"suppressed":[{"metric":"battery","value":3.061,"unit":"V","time":"2026-11-26T13:04:05.123456789Z"}],"warnings":["probe unplugged","\u003cb\u003e"],"class":"standard","tags":{"floor":"2","site":"north"}}`
	got, err := DecodeUplink([]byte(v1))
	if err != nil {
		t.Fatal(err)
	}
	want := fullUplink()
	want.V = WireVersion
	b, err := EncodeUplink(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != v1 {
		t.Errorf("a numeric-only uplink is no longer written as version 1:\n got %s\nwant %s", b, v1)
	}
	for i, r := range got.Readings {
		if r.Type != TypeNumber || r.Metric != want.Readings[i].Metric || r.Value != want.Readings[i].Value || !r.Time.Equal(want.Readings[i].Time) {
			t.Errorf("reading %d: got %+v, want %+v", i, r, want.Readings[i])
		}
	}
	if got.V != WireVersion || got.Device != "lht65-01" || *got.FCnt != 4_000_000_000 {
		t.Errorf("got %+v", got)
	}
}

// An uplink with typed readings is written as version 2 and reads back the same, for a full
// decoder and a sink.
func TestWireTypedReadings(t *testing.T) {
	u := typedUplink()
	b, err := EncodeUplink(u)
	if err != nil {
		t.Fatal(err)
	}
	if u.V != WireVersionTyped || !strings.HasPrefix(string(b), `{"v":2,`) {
		t.Fatalf("got version %d: %.20s", u.V, b)
	}
	for _, frag := range []string{
		`{"metric":"battery_status","type":"text","value":0,"text":"Good \u003cok\u003e","time":"2026-11-26T13:04:05Z"}`,
		`{"metric":"door_open","type":"bool","value":1,"time":`,
		`{"metric":"alarm","type":"bool","value":0,"time":`,
		`{"metric":"position","type":"location","value":0,"location":{"lat":52.3731,"lon":4.8922,"alt":312.5},"time":`,
		`{"metric":"lora.location","type":"location","value":0,"location":{"lat":-33.9,"lon":151.2},"time":`,
	} {
		if !strings.Contains(string(b), frag) {
			t.Errorf("wire form lacks %s:\n%s", frag, b)
		}
	}
	got, err := DecodeUplink(b)
	if err != nil {
		t.Fatal(err)
	}
	var want Uplink // what encoding/json reads, time zones as the wire has them
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("got  %+v\nwant %+v", *got, want)
	}
	if !reflect.DeepEqual(got.Readings[2:], u.Readings[2:]) || !reflect.DeepEqual(got.Suppressed, u.Suppressed) {
		t.Errorf("typed readings:\n got %+v %+v\nwant %+v %+v", got.Readings[2:], got.Suppressed, u.Readings[2:], u.Suppressed)
	}
	store, err := DecodeUplinkForStore(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(store.Readings, want.Readings) {
		t.Errorf("store readings:\n got %+v\nwant %+v", store.Readings, want.Readings)
	}
	if r := got.Readings[3]; r.Type != TypeBool || !r.Bool() {
		t.Errorf("door_open: got %+v, want a true bool", r)
	}
}
