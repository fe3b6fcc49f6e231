package hooks

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/decoders"
	"github.com/sluice-iot/sluice/internal/metrictest"
	"github.com/sluice-iot/sluice/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// capture is a Publisher that keeps what it is given, in order.
type capture struct {
	mu   sync.Mutex
	msgs []captured
	fail error // returned by Publish while set
}

type captured struct {
	Subject string         `json:"subject"`
	MsgID   string         `json:"msg_id"`
	Message map[string]any `json:"message"`
}

func (c *capture) Publish(_ context.Context, subject, msgID string, data []byte, _ bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	delete(m, "received_at") // the only field that depends on the clock
	c.msgs = append(c.msgs, captured{subject, msgID, m})
	return nil
}

func (c *capture) take() []captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.msgs
	c.msgs = nil
	return out
}

var lorawanRoutes = []RouteConfig{
	{Topic: "application/+/device/+/event/+", Format: decoders.FormatChirpStack, LoRaWAN: LoRaWANRouteConfig{RadioReadings: true}},
	{Topic: "v3/+/devices/+/up", Format: decoders.FormatTTN},
	{Topic: "v3/+/devices/+/join", Format: decoders.FormatTTN},
	{Topic: "v3/+/devices/+/location/solved", Format: decoders.FormatTTN},
}

const testRegistry = `devices:
  - device: 70B3D57ED005C0DE    # ChirpStack device without a codec: decoded here
    tenant: farm-b
    decoder: cayenne-lpp
    class: long
    tags: {site: field}
  - device: lpp-node            # The Things Stack device, by its device_id
    decoder: cayenne-lpp
`

type lorawanHarness struct {
	ingest *Ingest
	pub    *capture
	reg    *prometheus.Registry
	dedup  *Dedup
}

func newLoRaWANHarness(t *testing.T, routes []RouteConfig, devices string) *lorawanHarness {
	t.Helper()
	router, err := NewRouter(routes)
	if err != nil {
		t.Fatal(err)
	}
	h := &lorawanHarness{pub: &capture{}, reg: prometheus.NewRegistry()}
	decs := decoders.NewSet()
	rc := registry.DefaultConfig()
	if devices != "" {
		rc.File = filepath.Join(t.TempDir(), "devices.yaml")
		if err := os.WriteFile(rc.File, []byte(devices), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	reg, err := registry.New(rc, decs, zerolog.Nop(), h.reg)
	if err != nil {
		t.Fatal(err)
	}
	if h.dedup, err = NewDedup(DefaultDedupConfig(), h.reg); err != nil {
		t.Fatal(err)
	}
	h.ingest, err = NewIngest(IngestParts{Router: router, Decoders: decs, Publisher: h.pub,
		Registry: reg, Dedup: h.dedup, Log: zerolog.Nop(), Metrics: h.reg})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// eventTopic is the topic a network server publishes a testdata event on.
func eventTopic(file string) string {
	var ev struct {
		DeviceInfo struct {
			ApplicationID string `json:"applicationId"`
			DevEUI        string `json:"devEui"`
		} `json:"deviceInfo"`
		EndDeviceIDs struct {
			DeviceID string `json:"device_id"`
		} `json:"end_device_ids"`
	}
	raw, _ := os.ReadFile(file)
	json.Unmarshal(raw, &ev)
	name := strings.TrimSuffix(filepath.Base(file), ".json")
	kind := strings.Split(name, "_")[1]
	if strings.HasPrefix(name, "chirpstack_") {
		return "application/" + ev.DeviceInfo.ApplicationID + "/device/" + ev.DeviceInfo.DevEUI + "/event/" + kind
	}
	if kind == "location" {
		kind = "location/solved"
	}
	return "v3/farm@acme/devices/" + ev.EndDeviceIDs.DeviceID + "/" + kind
}

func (h *lorawanHarness) publish(t *testing.T, topic string, payload []byte, qos byte) {
	t.Helper()
	if err := h.ingest.Handle(context.Background(), &Message{Client: "ns", Topic: topic, Payload: payload, QoS: qos, PacketID: 1}); err != nil {
		t.Fatalf("%s: Handle: %v", topic, err)
	}
}

// Every testdata event, through the whole pipeline, with and without a registry: exactly what
// is stored (subject, message id, uplink or failure) is in testdata/lorawan/golden_*.json.
func TestLoRaWANGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/lorawan/*_*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata events: %v", err)
	}
	var events []string
	for _, f := range files {
		if !strings.HasPrefix(filepath.Base(f), "golden_") {
			events = append(events, f)
		}
	}
	for _, sc := range []struct{ name, registry string }{{"registry", testRegistry}, {"no_registry", ""}} {
		t.Run(sc.name, func(t *testing.T) {
			h := newLoRaWANHarness(t, lorawanRoutes, sc.registry)
			type result struct {
				Event  string     `json:"event"`
				Topic  string     `json:"topic"`
				Stored []captured `json:"stored"`
			}
			var got []result
			for _, f := range events {
				raw, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				topic := eventTopic(f)
				h.publish(t, topic, raw, 1)
				got = append(got, result{filepath.Base(f), topic, h.pub.take()})
			}
			b, _ := json.MarshalIndent(got, "", "  ")
			b = append(b, '\n')
			golden := filepath.Join("testdata", "lorawan", "golden_"+sc.name+".json")
			if *update {
				if err := os.WriteFile(golden, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(b, want) {
				t.Errorf("stored messages differ from %s (run with -update and review the diff); got:\n%s", golden, b)
			}
		})
	}
}

func mustRead(t *testing.T, file string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "lorawan", file))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// withFCnt returns a ChirpStack up event with another deduplicationId and frame counter (and
// payload, when data is set), as the network server would send for the next uplink.
func withFCnt(t *testing.T, raw []byte, dedupID string, fcnt int, object map[string]any) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	ev["deduplicationId"] = dedupID
	ev["fCnt"] = fcnt
	if fcnt == 0 {
		delete(ev, "fCnt")
	}
	if object != nil { // a new object comes from new bytes
		ev["object"] = object
		b, _ := json.Marshal(object)
		ev["data"] = base64.StdEncoding.EncodeToString(b)
	}
	b, _ := json.Marshal(ev)
	return b
}

func uplinks(t *testing.T, msgs []captured) []*sluice.Uplink {
	t.Helper()
	var out []*sluice.Uplink
	for _, m := range msgs {
		if !strings.HasPrefix(m.Subject, sluice.UplinkPrefix) {
			t.Fatalf("not an uplink: %s %v", m.Subject, m.Message)
		}
		b, _ := json.Marshal(m.Message)
		var u sluice.Uplink
		if err := json.Unmarshal(b, &u); err != nil {
			t.Fatal(err)
		}
		out = append(out, &u)
	}
	return out
}

// The same uplink forwarded by three network-server paths (each event its own id, as when
// three servers or integrations see one frame) is stored once; the copies are counted.
func TestLoRaWANDuplicatesFromThreeGateways(t *testing.T) {
	h := newLoRaWANHarness(t, lorawanRoutes, "")
	raw := mustRead(t, "chirpstack_up_object.json")
	topic := eventTopic("testdata/lorawan/chirpstack_up_object.json")
	for i, id := range []string{"copy-a", "copy-b", "copy-c"} {
		h.publish(t, topic, withFCnt(t, raw, id, 42, nil), byte(i%2))
	}
	got := uplinks(t, h.pub.take())
	if len(got) != 1 {
		t.Fatalf("stored %d uplinks, want 1", len(got))
	}
	if n := metrictest.Counter(t, h.dedup.duplicates); n != 2 {
		t.Errorf("sluice_lorawan_duplicates_total: got %v, want 2", n)
	}
}

// A device whose frame counter restarts (re-join or ABP reboot) is not taken for a duplicate:
// new payloads under old counters are stored, and after a join even identical ones are.
func TestLoRaWANFCntReset(t *testing.T) {
	h := newLoRaWANHarness(t, lorawanRoutes, "")
	raw := mustRead(t, "chirpstack_up_object.json")
	topic := eventTopic("testdata/lorawan/chirpstack_up_object.json")
	send := func(id string, fcnt int, temp float64) {
		h.publish(t, topic, withFCnt(t, raw, id, fcnt, map[string]any{"temperature": temp}), 1)
	}
	send("a0", 0, 20)
	send("a1", 1, 21)
	send("a2", 2, 22)
	send("b0", 0, 23) // reset without a join: new values under old counters
	send("b1", 1, 24)
	joinTopic := strings.Replace(topic, "/event/up", "/event/join", 1)
	h.publish(t, joinTopic, mustRead(t, "chirpstack_join.json"), 1)
	send("c0", 0, 23) // after a join: even the same payload under the same counter
	send("c0-copy", 0, 23)
	var temps []float64
	for _, u := range uplinks(t, h.pub.take()) {
		for _, r := range u.Readings {
			if r.Metric == "temperature" {
				temps = append(temps, r.Value)
			}
		}
	}
	want := []float64{20, 21, 22, 23, 24, 23}
	if len(temps) != len(want) {
		t.Fatalf("stored temperatures %v, want %v", temps, want)
	}
	for i := range want {
		if temps[i] != want[i] {
			t.Fatalf("stored temperatures %v, want %v", temps, want)
		}
	}
}

// An uplink the buffer refused is forgotten by the de-duplication window: its resend is
// stored, not counted as a duplicate.
func TestLoRaWANRefusedUplinkIsNotADuplicate(t *testing.T) {
	h := newLoRaWANHarness(t, lorawanRoutes, "")
	raw := mustRead(t, "chirpstack_up_object.json")
	topic := eventTopic("testdata/lorawan/chirpstack_up_object.json")
	h.pub.fail = sluice.ErrBufferFull
	err := h.ingest.Handle(context.Background(), &Message{Topic: topic, Payload: raw, QoS: 1})
	if err != sluice.ErrBufferFull {
		t.Fatalf("Handle with a full buffer: got %v, want ErrBufferFull", err)
	}
	h.pub.fail = nil
	h.publish(t, topic, raw, 1)
	if got := len(h.pub.take()); got != 1 {
		t.Fatalf("resend: stored %d messages, want 1", got)
	}
}

// Unknown devices follow the route's policy; every uplink not turned into readings is on the
// error subject with its raw event and a reason.
func TestLoRaWANUnknownDevicePolicy(t *testing.T) {
	raw := mustRead(t, "chirpstack_up_object.json")
	topic := eventTopic("testdata/lorawan/chirpstack_up_object.json")
	for _, tc := range []struct{ policy, wantSubject, wantReason string }{
		{PolicyAccept, "sluice.up.52f14cd4-c6f1-4fbd-8f87-4025e1d49242.a840414bf185f3b2", ""},
		{PolicyPark, "sluice.err.52f14cd4-c6f1-4fbd-8f87-4025e1d49242.a840414bf185f3b2", "parked"},
		{PolicyReject, "sluice.err.52f14cd4-c6f1-4fbd-8f87-4025e1d49242.a840414bf185f3b2", "rejected"},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			routes := []RouteConfig{{Topic: "application/+/device/+/event/+", Format: decoders.FormatChirpStack,
				LoRaWAN: LoRaWANRouteConfig{UnknownDevices: tc.policy}}}
			h := newLoRaWANHarness(t, routes, testRegistry)
			h.publish(t, topic, raw, 1)
			got := h.pub.take()
			if len(got) != 1 || got[0].Subject != tc.wantSubject {
				t.Fatalf("stored %+v, want one message on %s", got, tc.wantSubject)
			}
			if tc.wantReason == "" {
				return
			}
			if r := got[0].Message["reason"]; r != tc.wantReason {
				t.Errorf("reason: got %v, want %s", r, tc.wantReason)
			}
			if e := got[0].Message["error"]; e != "device a840414bf185f3b2 is not in the registry" {
				t.Errorf("error: got %q", e)
			}
			if p, _ := got[0].Message["payload"].(string); p == "" {
				t.Error("the raw event is not kept")
			}
			if n := metrictest.Counter(t, h.ingest.lora.m.unknown.WithLabelValues(tc.policy)); n != 1 {
				t.Errorf("sluice_lorawan_unknown_devices_total{policy=%q}: got %v, want 1", tc.policy, n)
			}
		})
	}
}

func TestLoRaWANRouteValidation(t *testing.T) {
	_, err := NewRouter([]RouteConfig{
		{Topic: "application/+/device/{device}/event/+", Tenant: "t", Format: "chirpstack-v3"},
		{Topic: "v3/+/devices/+/up", Format: decoders.FormatTTN, LoRaWAN: LoRaWANRouteConfig{DeviceID: "serial", Prefer: "cloud", UnknownDevices: "drop"}},
		{Topic: "sensors/{device}/up", Decoder: "json", Tenant: "t", LoRaWAN: LoRaWANRouteConfig{RadioReadings: true}},
		{Topic: "a/+/up", Format: decoders.FormatChirpStack}, // fine: the envelope names the device
	})
	want := []string{
		`routes[0].format: "chirpstack-v3" is not one of raw, chirpstack, ttn`,
		`routes[1].device_id: "serial" is not one of dev_eui, name, id`,
		`routes[1].prefer: "cloud" is not one of local, network`,
		`routes[1].unknown_devices: "drop" is not one of accept, park, reject`,
		`routes[2].device_id, prefer, unknown_devices, radio_readings: only with format chirpstack or ttn`,
	}
	if err == nil {
		t.Fatal("no error")
	}
	if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

// BenchmarkHandleChirpStack is the inline cost of one ChirpStack uplink: unwrap, identify,
// de-duplicate, flatten the object and the radio readings, encode (the publish is a capture).
func BenchmarkHandleChirpStack(b *testing.B) {
	router, _ := NewRouter(lorawanRoutes)
	pub := &capture{}
	dedup, _ := NewDedup(DefaultDedupConfig(), prometheus.NewRegistry())
	h, err := NewIngest(IngestParts{Router: router, Decoders: decoders.NewSet(), Publisher: pub,
		Dedup: dedup, Log: zerolog.Nop(), Metrics: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := os.ReadFile("testdata/lorawan/chirpstack_up_object.json")
	var ev map[string]any
	json.Unmarshal(raw, &ev)
	events := make([][]byte, 1024)
	for i := range events {
		ev["fCnt"] = i
		ev["deduplicationId"] = fmt.Sprint(i)
		events[i], _ = json.Marshal(ev)
	}
	msg := &Message{Topic: "application/a/device/a840414bf185f3b2/event/up", QoS: 1}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		msg.Payload = events[i%len(events)]
		i++
		if i%len(events) == 0 {
			dedup.Reset("a840414bf185f3b2")
			pub.take()
		}
		if err := h.Handle(context.Background(), msg); err != nil {
			b.Fatal(err)
		}
	}
}

// An event too broken to name its device is kept with the device of its topic.
func TestLoRaWANBrokenEventKeepsTopicDevice(t *testing.T) {
	h := newLoRaWANHarness(t, lorawanRoutes, "")
	h.publish(t, "application/app-1/device/0102030405060708/event/up", []byte(`{"deviceInfo":{"devEui":"0102030405060708"},"data":"%%%"}`), 1)
	h.publish(t, "v3/farm/devices/soil-3/up", []byte(`not json`), 1)
	got := h.pub.take()
	want := []struct{ subject, err string }{
		{"sluice.err.unknown.0102030405060708", "chirpstack envelope: data: not base64: illegal base64 data at input byte 0"},
		{"sluice.err.unknown.soil-3", "ttn envelope: payload is not a JSON object (starts with 'n')"},
	}
	if len(got) != len(want) {
		t.Fatalf("stored %d messages, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Subject != w.subject || got[i].Message["error"] != w.err || got[i].Message["reason"] != "envelope" {
			t.Errorf("message %d: got %s %v, want %s reason envelope error %q", i, got[i].Subject, got[i].Message, w.subject, w.err)
		}
	}
}

// The device is named as the route asks; the tenant comes from the registry, the route, the
// envelope, in that order; prefer picks between a local decoder and the network server's object.
func TestLoRaWANIdentityAndPreference(t *testing.T) {
	cs := mustRead(t, "chirpstack_up_object.json")
	csTopic := eventTopic("testdata/lorawan/chirpstack_up_object.json")
	ttn := mustRead(t, "ttn_up_decoded.json")
	for _, tc := range []struct {
		name                  string
		route                 RouteConfig
		registry              string
		topic                 string
		event                 []byte
		subject, decoder, has string
	}{
		{"chirpstack by name", RouteConfig{Format: decoders.FormatChirpStack, LoRaWAN: LoRaWANRouteConfig{DeviceID: "name"}}, "", csTopic, cs,
			"sluice.up.52f14cd4-c6f1-4fbd-8f87-4025e1d49242.barn-th-1", "network:chirpstack", "temperature"},
		{"route tenant", RouteConfig{Format: decoders.FormatChirpStack, Tenant: "site-7"}, "", csTopic, cs,
			"sluice.up.site-7.a840414bf185f3b2", "network:chirpstack", "temperature"},
		{"registry by name beats the route", RouteConfig{Format: decoders.FormatChirpStack, Tenant: "site-7"},
			"devices:\n  - device: barn-th-1\n    tenant: barn\n", csTopic, cs,
			"sluice.up.barn.a840414bf185f3b2", "network:chirpstack", "temperature"},
		{"local decoder wins", RouteConfig{Format: decoders.FormatChirpStack, Decoder: "raw"}, "", csTopic, cs,
			"sluice.up.52f14cd4-c6f1-4fbd-8f87-4025e1d49242.a840414bf185f3b2", "raw", ""},
		{"prefer network", RouteConfig{Format: decoders.FormatChirpStack, Decoder: "raw", LoRaWAN: LoRaWANRouteConfig{Prefer: "network"}}, "", csTopic, cs,
			"sluice.up.52f14cd4-c6f1-4fbd-8f87-4025e1d49242.a840414bf185f3b2", "network:chirpstack", "temperature"},
		{"ttn by id", RouteConfig{Format: decoders.FormatTTN, LoRaWAN: LoRaWANRouteConfig{DeviceID: "id"}}, "", "v3/farm/devices/greenhouse-co2/up", ttn,
			"sluice.up.default.greenhouse-co2", "network:ttn", "co2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.route.Topic = "#"
			h := newLoRaWANHarness(t, []RouteConfig{tc.route}, tc.registry)
			h.publish(t, tc.topic, tc.event, 1)
			got := uplinks(t, h.pub.take())
			if len(got) != 1 {
				t.Fatalf("stored %d uplinks, want 1", len(got))
			}
			u := got[0]
			if subject := sluice.UplinkSubject(u.Tenant, u.Device); subject != tc.subject || u.Decoder != tc.decoder {
				t.Errorf("got %s decoded by %s, want %s by %s", subject, u.Decoder, tc.subject, tc.decoder)
			}
			found := tc.has == ""
			for _, r := range u.Readings {
				found = found || r.Metric == tc.has
			}
			if !found {
				t.Errorf("readings %v lack %s", u.Readings, tc.has)
			}
		})
	}
}

// The registry's decoder gets the device's variables, the fPort and the payload.
func TestLoRaWANRegistryVariablesReachTheDecoder(t *testing.T) {
	script, err := decoders.NewScript("acme/th", "decoder.js", []byte(`
function decodeUplink(input) {
  return {data: {offset: Number(input.variables.offset), port: input.fPort, first: input.bytes[0]}};
}`), decoders.DefaultConfig(), decoders.ScriptOptions{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	router, err := NewRouter(lorawanRoutes)
	if err != nil {
		t.Fatal(err)
	}
	pub := &capture{}
	decs := decoders.NewSet(script)
	file := filepath.Join(t.TempDir(), "devices.csv")
	os.WriteFile(file, []byte("device,decoder,variables\na840414bf185f3b2,acme/th,offset=-1.5\n"), 0o600)
	reg, err := registry.New(registry.Config{File: file}, decs, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewIngest(IngestParts{Router: router, Decoders: decs, Publisher: pub,
		Registry: reg, Log: zerolog.Nop(), Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	topic := eventTopic("testdata/lorawan/chirpstack_up_object.json")
	if err := h.Handle(context.Background(), &Message{Topic: topic, Payload: mustRead(t, "chirpstack_up_object.json"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	got := uplinks(t, pub.take())
	if len(got) != 1 || got[0].Decoder != "acme/th" {
		t.Fatalf("got %+v, want one uplink decoded by acme/th", got)
	}
	want := map[string]float64{"first": 0x0b, "offset": -1.5, "port": 2}
	vals := map[string]float64{}
	for _, r := range got[0].Readings {
		vals[r.Metric] = r.Value
	}
	for k, v := range want {
		if vals[k] != v {
			t.Errorf("%s: got %v, want %v (readings %v)", k, vals[k], v, got[0].Readings)
		}
	}
}
