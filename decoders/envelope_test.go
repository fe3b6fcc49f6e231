package decoders

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sluice-iot/sluice"
)

func TestUnwrapErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format Format
		topic  string
		in     string
		want   string
	}{
		{"not json", FormatChirpStack, "application/a/device/b/event/up", "hello", `chirpstack envelope: payload is not a JSON object (starts with 'h')`},
		{"empty", FormatTTN, "v3/a/devices/b/up", " ", `ttn envelope: empty payload, want a JSON object`},
		{"no devEui", FormatChirpStack, "application/a/device/b/event/up", `{"fCnt":1}`, `chirpstack envelope: up event has no deviceInfo.devEui`},
		{"bad base64", FormatChirpStack, "application/a/device/b/event/up", `{"deviceInfo":{"devEui":"01"},"data":"!!"}`, `chirpstack envelope: data: not base64: illegal base64 data at input byte 0`},
		{"bad time", FormatChirpStack, "x/event/up", `{"deviceInfo":{"devEui":"01"},"time":"yesterday"}`, `chirpstack envelope: time: "yesterday" is not an RFC 3339 time`},
		{"object not object", FormatChirpStack, "x/event/up", `{"deviceInfo":{"devEui":"01"},"object":[1]}`, `chirpstack envelope: object: want a JSON object, got [1]`},
		{"ttn no ids", FormatTTN, "v3/a/devices/b/up", `{"uplink_message":{"f_port":1}}`, `ttn envelope: uplink has neither end_device_ids.device_id nor end_device_ids.dev_eui`},
		{"ttn bad frequency", FormatTTN, "v3/a/devices/b/up", `{"end_device_ids":{"device_id":"d"},"uplink_message":{"settings":{"frequency":"fast"}}}`, `ttn envelope: invalid JSON: "fast" is not an unsigned integer`},
		{"raw", FormatRaw, "a", `{}`, `raw envelope: not an envelope format`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unwrap(tc.format, tc.topic, []byte(tc.in))
			if err == nil || err.Error() != tc.want {
				t.Errorf("got %v, want %s", err, tc.want)
			}
		})
	}
}

// Without a topic that says the kind, ChirpStack events are told apart by their fields.
func TestChirpStackKindFromFields(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"deviceInfo":{"devEui":"01"},"rxInfo":[]}`, KindUp},
		{`{"deviceInfo":{"devEui":"01"},"fPort":3}`, KindUp},
		{`{"deviceInfo":{"devEui":"01"},"margin":5,"batteryLevel":50}`, KindStatus},
		{`{"deviceInfo":{"devEui":"01"},"devAddr":"01020304"}`, KindJoin},
		{`{"deviceInfo":{"devEui":"01"},"level":"ERROR","code":"UPLINK_CODEC"}`, KindLog},
		{`{"deviceInfo":{"devEui":"01"},"queueItemId":"q","acknowledged":true}`, KindAck},
		{`{"deviceInfo":{"devEui":"01"},"downlinkId":7,"queueItemId":"q"}`, KindTxAck},
		{`{"deviceInfo":{"devEui":"01"},"location":{"latitude":1}}`, KindLocation},
		{`{"deviceInfo":{"devEui":"01"},"integrationName":"loracloud","eventType":"x","object":{"a":1}}`, KindIntegration},
		{`{"deviceInfo":{"devEui":"01"}}`, KindOther},
	} {
		env, err := Unwrap(FormatChirpStack, "custom/topic", []byte(tc.in))
		if err != nil || env.Kind != tc.want {
			t.Errorf("%s: got %v %v, want kind %s", tc.in, env, err, tc.want)
		}
	}
	env, err := Unwrap(FormatChirpStack, "application/a/device/b/event/uplinkframe", []byte(`{}`))
	if err != nil || env.Kind != KindOther {
		t.Errorf("unknown event type in the topic: got %v %v, want kind other", env, err)
	}
}

func FuzzUnwrap(f *testing.F) {
	files, _ := filepath.Glob("../hooks/testdata/lorawan/*.json")
	for _, file := range files {
		if raw, err := os.ReadFile(file); err == nil {
			f.Add(raw)
		}
	}
	f.Add([]byte(`{"deviceInfo":{"devEui":"01"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, c := range []struct {
			f     Format
			topic string
		}{{FormatChirpStack, "application/a/device/b/event/up"}, {FormatChirpStack, "x"}, {FormatTTN, "v3/a@t/devices/b/up"}} {
			env, err := Unwrap(c.f, c.topic, b)
			if err != nil {
				continue
			}
			if env.Kind == KindUp && (env.FCnt == nil || env.FPort == nil || env.Radio == nil) {
				t.Fatalf("%s up event without fCnt, fPort or radio: %+v", c.f, env)
			}
			if env.Kind == KindStatus && env.Status == nil {
				t.Fatalf("status event without status: %+v", env)
			}
			if env.Kind == KindLocation && env.Location == nil {
				t.Fatalf("location event without location: %+v", env)
			}
		}
	})
}

func BenchmarkUnwrapChirpStack(b *testing.B) {
	raw, err := os.ReadFile("../hooks/testdata/lorawan/chirpstack_up_object.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := Unwrap(FormatChirpStack, "application/a/device/b/event/up", raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnwrapTTN(b *testing.B) {
	raw, err := os.ReadFile("../hooks/testdata/lorawan/ttn_up_decoded.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := Unwrap(FormatTTN, "v3/farm@acme/devices/greenhouse-co2/up", raw); err != nil {
			b.Fatal(err)
		}
	}
}

// The locations The Things Stack attaches to an uplink, and a location event, become location
// readings.
func TestLocationReadings(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	env, err := Unwrap(FormatTTN, "v3/app/devices/d1/up", []byte(`{"end_device_ids":{"device_id":"d1"},
		"uplink_message":{"f_port":1,"f_cnt":7,"locations":{"user":{"latitude":52.1,"longitude":5.1,"altitude":3,"source":"SOURCE_REGISTRY"},
		"frm-payload":{"latitude":52.2,"longitude":5.2}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range env.RadioReadings(at) {
		if r.Type == sluice.TypeLocation {
			got = append(got, fmt.Sprintf("%s %v %v %v", r.Metric, r.Location.Lat, r.Location.Lon, *r.Location.Alt))
		}
	}
	if want := []string{"lora.location.frm-payload 52.2 5.2 0", "lora.location.user 52.1 5.1 3"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	env, err = Unwrap(FormatTTN, "v3/app/devices/d1/location/solved", []byte(`{"end_device_ids":{"device_id":"d1"},
		"location_solved":{"location":{"latitude":-33.9,"longitude":151.2,"altitude":10,"accuracy":25}}}`))
	if err != nil {
		t.Fatal(err)
	}
	rs := env.LocationReadings(at)
	if len(rs) != 2 || rs[0].Metric != "lora.accuracy" || rs[0].Value != 25 || rs[1].Metric != "lora.location" ||
		rs[1].Type != sluice.TypeLocation || rs[1].Location.Lat != -33.9 || rs[1].Location.Lon != 151.2 || *rs[1].Location.Alt != 10 {
		t.Errorf("location event readings: %+v", rs)
	}
}
