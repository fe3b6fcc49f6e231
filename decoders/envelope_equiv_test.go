package decoders

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// unwrapCases are the format and topic combinations every equivalence input goes through: the
// ChirpStack topic that names the kind, a custom ChirpStack topic (kind from the fields) and a
// The Things Stack topic.
var unwrapCases = []struct {
	f     Format
	topic string
}{
	{FormatChirpStack, "application/a/device/b/event/up"},
	{FormatChirpStack, "x"},
	{FormatTTN, "v3/a@t/devices/b/up"},
}

// assertSameUnwrap fails t unless Unwrap and the legacy unwrapping agree on payload: the same
// envelope, or the same error text. A JSON type error names the Go type it was decoding into,
// so two of them agree when they name the same JSON value, field and offset.
func assertSameUnwrap(t *testing.T, f Format, topic string, payload []byte) {
	t.Helper()
	want, wantErr := legacyUnwrap(f, topic, payload)
	got, gotErr := Unwrap(f, topic, payload)
	if !sameUnwrapError(gotErr, wantErr) {
		t.Fatalf("%s %s %q:\nerror %v\nwant  %v", f, topic, payload, gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s %s %q:\ngot  %+v\nwant %+v", f, topic, payload, got, want)
	}
}

// equivalenceInputs are the network-server events of the test data, each with the topic its
// golden file publishes it on, and the event payloads of the unit tests.
func equivalenceInputs(t testing.TB) (events map[string][]byte, topics map[string]string) {
	files, err := filepath.Glob("../hooks/testdata/lorawan/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no events in ../hooks/testdata/lorawan: %v", err)
	}
	events, topics = map[string][]byte{}, map[string]string{}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(file)
		if !strings.HasPrefix(name, "golden_") {
			events[name] = raw
			continue
		}
		var golden []struct{ Event, Topic string }
		if err := json.Unmarshal(raw, &golden); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, g := range golden {
			topics[g.Event] = g.Topic
		}
	}
	return events, topics
}

// Unwrap gives every test-data event and every unit-test payload the envelope (or error) the
// unwrapping before the single-pass decode gave.
func TestUnwrapMatchesLegacy(t *testing.T) {
	events, topics := equivalenceInputs(t)
	if len(events) < 14 || len(topics) < 14 {
		t.Fatalf("found %d events and %d golden topics, want the 14 of hooks/testdata/lorawan", len(events), len(topics))
	}
	for name, raw := range events {
		f := FormatChirpStack
		if strings.HasPrefix(name, "ttn_") {
			f = FormatTTN
		}
		topic, ok := topics[name]
		if !ok {
			t.Fatalf("%s: no golden topic", name)
		}
		assertSameUnwrap(t, f, topic, raw)
		for _, c := range unwrapCases {
			assertSameUnwrap(t, c.f, c.topic, raw)
		}
	}
	for _, in := range equivalencePayloads {
		for _, c := range unwrapCases {
			assertSameUnwrap(t, c.f, c.topic, []byte(in))
		}
	}
}

// equivalencePayloads are edge cases of the object fields: absent, null, not an object, given
// twice, nested.
var equivalencePayloads = []string{
	`{"deviceInfo":{"devEui":"01"}}`,
	`{"deviceInfo":{"devEui":"01"},"object":null}`,
	`{"deviceInfo":{"devEui":"01"},"object":{}}`,
	`{"deviceInfo":{"devEui":"01"},"object":[1, 2]}`,
	`{"deviceInfo":{"devEui":"01"},"object":"a long string, longer than twenty bytes"}`,
	`{"deviceInfo":{"devEui":"01"},"object":{"a":1},"object":{"b":2}}`,
	`{"deviceInfo":{"devEui":"01"},"object":{"a":1},"object":null}`,
	`{"deviceInfo":{"devEui":"01"},"object":{"a":{"b":[1,"x",null,true]},"c":1e400}}`,
	`{"deviceInfo":{"devEui":"01"},"object":{"a":1},"data":"!!"}`,
	`{"deviceInfo":{"devEui":"01"},"integrationName":"x","object":7}`,
	`{"deviceInfo":{"devEui":"01"},"rxInfo":[{"rssi":-1},{"snr":2},{}],"fCnt":0}`,
	`{"deviceInfo":"x"}`,
	`{"deviceInfo":{"devEui":"01","tenantName":5}}`,
	`{"end_device_ids":{"device_id":"d"},"uplink_message":{"decoded_payload":null}}`,
	`{"end_device_ids":{"device_id":"d"},"uplink_message":{"decoded_payload":[1]}}`,
	`{"end_device_ids":{"device_id":"d"},"uplink_message":{"decoded_payload":{"t":1},"decoded_payload":{"u":2}}}`,
	`{"end_device_ids":{"device_id":"d"},"uplink_message":{"decoded_payload":{"t":1},"f_cnt":"x"}}`,
	`{"end_device_ids":{"device_id":"d"},"uplink_message":{"rx_metadata":[{"channel_rssi":-3},{"rssi":-9,"snr":1}]}}`,
	`{"end_device_ids":{"device_id":"d"},"uplink_message":null}`,
}

// FuzzUnwrapMatchesLegacy compares Unwrap with the legacy unwrapping on arbitrary input,
// starting from the test-data events.
func FuzzUnwrapMatchesLegacy(f *testing.F) {
	events, _ := equivalenceInputs(f)
	for _, raw := range events {
		f.Add(raw)
	}
	for _, in := range equivalencePayloads {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, c := range unwrapCases {
			assertSameUnwrap(t, c.f, c.topic, b)
		}
	})
}

func sameUnwrapError(got, want error) bool {
	if got == nil || want == nil {
		return got == want
	}
	var g, w *json.UnmarshalTypeError
	if errors.As(got, &g) && errors.As(want, &w) {
		return g.Value == w.Value && g.Field == w.Field && g.Offset == w.Offset
	}
	return got.Error() == want.Error()
}

// oddValues replace the test-data events' values one at a time in TestUnwrapMatchesLegacyVariants:
// each of them is outside what the fast path reads, or at its edge.
var oddValues = []string{
	`null`, `""`, `"x"`, `"é"`, `"a\"b"`, `"\u0041"`, `0`, `-0`, `1.5`, `-1`, `1e400`, `1E2`,
	`4294967296`, `18446744073709551616`, `9223372036854775808`, `true`, `false`, `[]`, `[1]`,
	`{}`, `{"a":1}`, `{"A":null}`, `01`, `tru`, `"`,
}

// jsonToken finds the keys and scalar values of a JSON text.
var jsonToken = regexp.MustCompile(`"(?:[^"\\]|\\.)*"(\s*:)?|-?\d[\d.eE+-]*|true|false|null`)

// Every test-data event with one key upper-cased, or one value replaced by an odd value, unwraps
// as it did before the fast path.
func TestUnwrapMatchesLegacyVariants(t *testing.T) {
	events, _ := equivalenceInputs(t)
	n := 0
	for _, raw := range events {
		for _, loc := range jsonToken.FindAllSubmatchIndex(raw, -1) {
			start, end := loc[0], loc[1]
			var variants []string
			if loc[2] >= 0 { // a key: try it in upper case, and renamed
				end = loc[2]
				variants = []string{strings.ToUpper(string(raw[start:end])), `"zz"`}
			} else {
				variants = oddValues
			}
			for _, v := range variants {
				b := append(append(append([]byte{}, raw[:start]...), v...), raw[end:]...)
				for _, c := range unwrapCases {
					assertSameUnwrap(t, c.f, c.topic, b)
				}
				n++
			}
		}
	}
	t.Logf("%d variants", n)
	if n < 1000 {
		t.Fatalf("only %d variants", n)
	}
}
