package edge_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/sluice-iot/sluice/bridge"
	"github.com/sluice-iot/sluice/decoders"
	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/hooks"
	"github.com/sluice-iot/sluice/internal/metrictest"
	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/internal/sitetest"
)

const lorawanTestdata = "../hooks/testdata/lorawan/"

// csEvent loads a ChirpStack testdata event and applies changes to its top-level fields (nil
// deletes a field).
func csEvent(t *testing.T, file string, changes map[string]any) []byte {
	t.Helper()
	raw, err := os.ReadFile(lorawanTestdata + file)
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	for k, v := range changes {
		if v == nil {
			delete(ev, k)
		} else {
			ev[k] = v
		}
	}
	b, _ := json.Marshal(ev)
	return b
}

func lorawanRoutes(prefix string) []hooks.RouteConfig {
	return []hooks.RouteConfig{
		{Topic: prefix + "application/+/device/+/event/+", Format: decoders.FormatChirpStack,
			LoRaWAN: hooks.LoRaWANRouteConfig{RadioReadings: true}},
		{Topic: prefix + "v3/+/devices/+/up", Format: decoders.FormatTTN},
	}
}

func readingsOf(t *testing.T, schema, device string) map[string]float64 {
	t.Helper()
	rows, err := pgtest.Connect(t, schema).Query(context.Background(),
		"SELECT metric, value FROM readings WHERE device = $1", device)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]float64{}
	for rows.Next() {
		var m string
		var v float64
		if err := rows.Scan(&m, &v); err != nil {
			t.Fatal(err)
		}
		out[m] = v
	}
	return out
}

// ChirpStack and The Things Stack events published with mosquitto_pub to Sluice's broker
// become rows: three copies of one uplink are stored once, a status event gives the battery,
// join/log/ack events are left alone, and a device's frame counter reset is accepted.
func TestLoRaWANEndToEndMosquittoPub(t *testing.T) {
	cfg := sitetest.Config(t)
	cfg.Routes = append(cfg.Routes, lorawanRoutes("")...)
	site := sitetest.Start(t, cfg)
	const app = "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/a840414bf185f3b2/event/"
	for _, id := range []string{"gw-copy-1", "gw-copy-2", "gw-copy-3"} {
		mosquittoPub(t, site.MQTTAddr, app+"up", string(csEvent(t, "chirpstack_up_object.json", map[string]any{"deduplicationId": id})), 1)
	}
	for _, kind := range []string{"join", "log", "ack", "txack", "status"} {
		mosquittoPub(t, site.MQTTAddr, app+kind, string(csEvent(t, "chirpstack_"+kind+".json", nil)), 1)
	}
	// The device re-joins: its frame counter starts again from 0 (omitted in protobuf-JSON).
	mosquittoPub(t, site.MQTTAddr, app+"up", string(csEvent(t, "chirpstack_up_object.json", map[string]any{
		"deduplicationId": "after-rejoin", "fCnt": nil, "time": "2026-03-01T10:10:00Z",
		"data": base64.StdEncoding.EncodeToString([]byte{9, 9}), "object": map[string]any{"temperature": 19.0},
	})), 1)
	raw, err := os.ReadFile(lorawanTestdata + "ttn_up_decoded.json")
	if err != nil {
		t.Fatal(err)
	}
	mosquittoPub(t, site.MQTTAddr, "v3/farm@acme/devices/greenhouse-co2/up", string(raw), 1)

	// 11 readings of the uplink (5 decoded by ChirpStack, among them the text status and the
	// boolean alarm, 6 radio), 3 of the status event (lora.external_power a boolean), 7 of the
	// re-joined uplink (1 + 6 radio), 4 of The Things Stack uplink.
	// A marker stored after them: once its row is there, so is every row stored before it,
	// a wrongly stored copy among them (the sink commits in the order of the buffer).
	const want = 11 + 3 + 7 + 4
	mosquittoPub(t, site.MQTTAddr, "sensors/marker/up", `{"marker":1}`, 1)
	site.WaitRows(t, "SELECT count(*) FROM readings WHERE device = 'marker'", 1, 15*time.Second)
	if n := pgtest.Count(t, site.Schema, "SELECT (SELECT count(*) FROM readings WHERE device <> 'marker') + "+
		"(SELECT count(*) FROM readings_text) + (SELECT count(*) FROM readings_bool)"); n != want {
		t.Fatalf("readings: got %d rows, want %d", n, want)
	}
	if n := pgtest.Count(t, site.Schema, `SELECT count(*) FROM readings WHERE device = 'a840414bf185f3b2' AND metric = 'temperature'`); n != 2 {
		t.Errorf("temperature rows (uplink + re-joined uplink): got %d, want 2", n)
	}
	got := readingsOf(t, site.Schema, "a840414bf185f3b2")
	for metric, want := range map[string]float64{
		"humidity": 48, "lora.gateways": 3, "lora.rssi": -57, "lora.snr": 9.2, "lora.battery": 87.5, "lora.margin": 7,
	} {
		if got[metric] != want {
			t.Errorf("%s: got %v, want %v", metric, got[metric], want)
		}
	}
	// Numbers: 9 of the uplink, 2 of the status event, 7 of the re-joined uplink.
	if n := pgtest.Count(t, site.Schema, `SELECT count(*) FROM readings WHERE tenant = '52f14cd4-c6f1-4fbd-8f87-4025e1d49242'`); n != 9+2+7 {
		t.Errorf("ChirpStack readings under the tenantId: got %d, want 18", n)
	}
	if n := pgtest.Count(t, site.Schema, `SELECT count(*) FROM readings_bool WHERE tenant = '52f14cd4-c6f1-4fbd-8f87-4025e1d49242' AND metric IN ('alarm', 'lora.external_power')`); n != 2 {
		t.Errorf("ChirpStack boolean readings (alarm, lora.external_power): got %d, want 2", n)
	}
	got = readingsOf(t, site.Schema, "a84041000181c0fe")
	if got["co2"] != 612 {
		t.Errorf("The Things Stack uplink: got %v", got)
	}
	if n := pgtest.Count(t, site.Schema, `SELECT count(*) FROM readings_bool WHERE tenant = 'acme' AND metric = 'valve_open' AND value`); n != 1 {
		t.Errorf("The Things Stack boolean valve_open: got %d rows, want 1 true", n)
	}
	if n := pgtest.Count(t, site.Schema, `SELECT count(*) FROM readings WHERE tenant = 'acme'`); n != 3 {
		t.Errorf("The Things Stack numeric readings under tenant acme (from app@acme): got %d, want 3", n)
	}
}

// upEvent is a ChirpStack uplink of the barn sensor with frame counter n: its own event id,
// time, payload (Cayenne LPP temperature n/10 on channel 1) and ChirpStack-decoded object.
func upEvent(t *testing.T, n int) []byte {
	lpp := []byte{1, 0x67, byte(n >> 8), byte(n)}
	return csEvent(t, "chirpstack_up_object.json", map[string]any{
		"deduplicationId": fmt.Sprintf("uplink-%d", n),
		"fCnt":            n,
		"time":            time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Second).Format(time.RFC3339),
		"data":            base64.StdEncoding.EncodeToString(lpp),
		"object":          map[string]any{"temperature": float64(n) / 10},
	})
}

// The registry changes while uplinks flow: every uplink is stored (nothing lost), those before
// the reload with ChirpStack's object ("temperature"), the next one after it with the decoder
// the registry now names ("temperature_1", Cayenne LPP).
func TestLoRaWANRegistryReloadWhileTrafficFlows(t *testing.T) {
	cfg := sitetest.Config(t)
	cfg.Routes = lorawanRoutes("")
	cfg.Routes[0].LoRaWAN.RadioReadings = false // one reading per uplink
	cfg.Registry.File = filepath.Join(t.TempDir(), "devices.yaml")
	writeFile(t, cfg.Registry.File, "devices:\n  - device: a840414bf185f3b2\n    tenant: barn\n")
	site := sitetest.Start(t, cfg)
	cl := mqtttest.Connect(t, site.MQTTAddr, "chirpstack-ns")
	defer cl.Disconnect(100)
	const topic = "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/a840414bf185f3b2/event/up"
	send := func(n int) {
		if tok := cl.Publish(topic, 1, false, upEvent(t, n)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Errorf("publish %d: %v", n, tok.Error())
		}
	}

	var sent atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // traffic: one uplink after another until stopped
		defer close(done)
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			send(n)
			sent.Store(int64(n))
		}
	}()
	for sent.Load() < 20 {
		time.Sleep(5 * time.Millisecond)
	}
	writeFile(t, cfg.Registry.File, "devices:\n  - device: a840414bf185f3b2\n    tenant: barn\n    decoder: cayenne-lpp\n")
	deadline := time.Now().Add(10 * time.Second)
	for metrictest.Value(t, site.Registry(), "sluice_registry_reloads_total", "result", "ok") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the registry was not reloaded within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	<-done
	last := int(sent.Load()) + 1
	send(last) // the next uplink after the reload

	if n := site.WaitRows(t, "SELECT count(*) FROM readings", int64(last), 15*time.Second); n != int64(last) {
		t.Fatalf("readings: got %d rows for %d uplinks, want one each", n, last)
	}
	if n := pgtest.Count(t, site.Schema, `SELECT count(DISTINCT time) FROM readings WHERE tenant = 'barn'`); n != int64(last) {
		t.Errorf("uplinks stored: got %d, want %d", n, last)
	}
	old := pgtest.Count(t, site.Schema, `SELECT count(*) FROM readings WHERE metric = 'temperature'`)
	if old < 20 {
		t.Errorf("uplinks decoded before the reload: got %d, want at least the 20 sent before it", old)
	}
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).Add(time.Duration(last) * time.Second)
	var metric string
	var value float64
	err := pgtest.Connect(t, site.Schema).QueryRow(context.Background(),
		"SELECT metric, value FROM readings WHERE time = $1", at).Scan(&metric, &value)
	if err != nil {
		t.Fatal(err)
	}
	if metric != "temperature_1" || value != float64(last)/10 {
		t.Errorf("the uplink after the reload: got %s = %v, want temperature_1 = %v (the registry's decoder)", metric, value, float64(last)/10)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // replaced at once, as tools do
		t.Fatal(err)
	}
}

const mosquittoAddr = "127.0.0.1:1883"

// restartMosquitto restarts the local Mosquitto (the network server's broker in these tests)
// and waits until it accepts connections again.
func restartMosquitto(t *testing.T) {
	t.Helper()
	exec.Command("pkill", "-x", "mosquitto").Run()
	for i := 0; i < 100; i++ {
		if exec.Command("pgrep", "-x", "mosquitto").Run() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	ensureMosquitto(t)
}

// ensureMosquitto starts the local Mosquitto when it is not running and waits for it.
func ensureMosquitto(t *testing.T) {
	t.Helper()
	if exec.Command("pgrep", "-x", "mosquitto").Run() != nil {
		if out, err := exec.Command("mosquitto", "-d", "-c", "/etc/mosquitto/mosquitto.conf").CombinedOutput(); err != nil {
			t.Errorf("start mosquitto: %v: %s", err, out)
		}
	}
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", mosquittoAddr); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("mosquitto does not accept connections on %s", mosquittoAddr)
}

// Sluice subscribes to the network server's broker (the local Mosquitto) with a persistent
// session. Mosquitto restarts in the middle of the traffic: Sluice reconnects and every
// uplink becomes readings, each once.
func TestLoRaWANSubscriberSurvivesBrokerRestart(t *testing.T) {
	if c, err := net.Dial("tcp", mosquittoAddr); err != nil {
		t.Fatalf("no Mosquitto on %s: %v", mosquittoAddr, err)
	} else {
		c.Close()
	}
	t.Cleanup(func() { ensureMosquitto(t) })
	prefix := "sluice-test-" + nuid.Next() + "/"
	cfg := sitetest.Config(t)
	cfg.Routes = lorawanRoutes(prefix)
	sub := bridge.DefaultConfig()
	sub.Name, sub.Broker, sub.ClientID = "ns", "tcp://"+mosquittoAddr, "sluice-"+nuid.Next()
	sub.Topics = []string{prefix + "application/+/device/+/event/+"}
	sub.MaxReconnectInterval = time.Second
	cfg.Subscribe = []bridge.Config{sub}
	site := sitetest.Start(t, cfg)
	deadline := time.Now().Add(10 * time.Second)
	for metrictest.Value(t, site.Registry(), "sluice_subscriber_connected", "subscription", "ns") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the subscription did not connect within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The network server: a QoS 1 publisher with its own persistent session, resending what
	// the broker did not acknowledge.
	opts := paho.NewClientOptions().AddBroker("tcp://" + mosquittoAddr).SetClientID("ns-" + nuid.Next()).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).
		SetMaxReconnectInterval(time.Second)
	ns := paho.NewClient(opts)
	if tok := ns.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect the publisher: %v", tok.Error())
	}
	defer ns.Disconnect(100)
	const topic = "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/a840414bf185f3b2/event/up"
	publish := func(n int) {
		for attempt := 0; ; attempt++ {
			tok := ns.Publish(prefix+topic, 1, false, upEvent(t, n))
			if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
				return
			}
			if attempt == 100 {
				t.Fatalf("publish %d: %v", n, tok.Error())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	const total = 60
	for n := 1; n <= total; n++ {
		if n == total/2 {
			restartMosquitto(t)
		}
		publish(n)
	}
	if n := site.WaitRows(t, "SELECT count(*) FROM readings WHERE metric = 'temperature'", total, 30*time.Second); n != total {
		t.Fatalf("uplinks stored: got %d, want %d", n, total)
	}
	if n := pgtest.Count(t, site.Schema, "SELECT count(DISTINCT time) FROM readings WHERE metric = 'temperature'"); n != total {
		t.Errorf("distinct uplinks: got %d, want %d", n, total)
	}
	if c := metrictest.Value(t, site.Registry(), "sluice_subscriber_connects_total", "subscription", "ns"); c < 2 {
		t.Errorf("sluice_subscriber_connects_total: got %v, want at least 2 (a reconnection)", c)
	}
}

// The quick-start config routes ChirpStack and The Things Stack topics out of the box.
func TestSampleConfigRoutesLoRaWAN(t *testing.T) {
	cfg, err := edge.LoadConfig("../configs/sluice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := hooks.NewRouter(cfg.Routes)
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]decoders.Format{
		"application/17c82e96/device/a840414bf185f3b2/event/up":     decoders.FormatChirpStack,
		"application/17c82e96/device/a840414bf185f3b2/event/status": decoders.FormatChirpStack,
		"v3/farm@acme/devices/greenhouse-co2/up":                    decoders.FormatTTN,
		"v3/farm/devices/greenhouse-co2/up":                         decoders.FormatTTN,
	} {
		m, ok := r.Match(topic)
		if !ok || m.Route.Format != want || m.Route.Decoder != "" {
			t.Errorf("%s: got %+v (matched %v), want format %s with no decoder (the network server's object)", topic, m.Route, ok, want)
		}
	}
	if cfg.Registry.File != "" || cfg.Dedup.Window != time.Minute || len(cfg.Subscribe) != 0 {
		t.Errorf("registry %+v, dedup %+v, subscribe %+v: want no registry, a 1m window, no subscription", cfg.Registry, cfg.Dedup, cfg.Subscribe)
	}
}

// BenchmarkLoRaWANSubscriber measures the subscribing mode end to end into JetStream: b.N
// ChirpStack uplinks published at QoS 1 to the local Mosquitto, each acknowledged by Sluice
// only once stored. Reports stored uplinks per second.
func BenchmarkLoRaWANSubscriber(b *testing.B) {
	prefix := "sluice-bench-" + nuid.Next() + "/"
	cfg := sitetest.Config(b)
	cfg.Routes = lorawanRoutes(prefix)
	sub := bridge.DefaultConfig()
	sub.Name, sub.Broker, sub.ClientID = "ns", "tcp://"+mosquittoAddr, "sluice-"+nuid.Next()
	sub.Topics = []string{prefix + "application/+/device/+/event/+"}
	cfg.Subscribe = []bridge.Config{sub}
	site := sitetest.Start(b, cfg)
	stored := func() float64 {
		return metrictest.Value(b, site.Registry(), "sluice_subscriber_messages_total", "result", "stored")
	}
	mqtttest.WaitFor(b, 30*time.Second, "the subscription", func() bool {
		return metrictest.Value(b, site.Registry(), "sluice_subscriber_connected", "", "") == 1
	})
	ns := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + mosquittoAddr).SetClientID("ns-" + nuid.Next()))
	if tok := ns.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("connect: %v", tok.Error())
	}
	defer ns.Disconnect(100)
	const topic = "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/a840414bf185f3b2/event/up"
	events := make([][]byte, b.N)
	for i := range events {
		events[i] = upEvent(&testing.T{}, i+1)
	}
	b.ResetTimer()
	start := time.Now()
	// Bursts of 500: Mosquitto queues at most max_queued_messages (1000 by default) for a
	// session and drops the rest, so the publisher waits for Sluice to catch up.
	const burst = 500
	for sent := 0; sent < b.N; {
		toks := make([]paho.Token, 0, burst)
		for ; sent < b.N && len(toks) < burst; sent++ {
			toks = append(toks, ns.Publish(prefix+topic, 1, false, events[sent]))
		}
		for _, tok := range toks {
			tok.Wait()
		}
		for stored() < float64(sent) {
			if time.Since(start) > 2*time.Minute {
				b.Fatalf("stored %v of %d", stored(), sent)
			}
			time.Sleep(time.Millisecond)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "uplinks/s")
}

// A network server that sends one event twice (a redelivery: same deduplicationId) gets it
// stored once in the buffer, even with Sluice's own de-duplication window off: the JetStream
// message id is the event id.
func TestLoRaWANRedeliveryCollapsesInTheBuffer(t *testing.T) {
	cfg := sitetest.Config(t)
	cfg.Routes = lorawanRoutes("")
	cfg.Dedup.Window = 0
	cfg.NATS.Listen = mqtttest.FreeAddr(t)
	site := sitetest.Start(t, cfg)
	const topic = "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/a840414bf185f3b2/event/up"
	event := string(csEvent(t, "chirpstack_up_object.json", nil))
	mosquittoPub(t, site.MQTTAddr, topic, event, 1)
	mosquittoPub(t, site.MQTTAddr, topic, event, 1)
	if got := metrictest.Value(t, site.Registry(), "sluice_ingest_messages_total", "result", "decoded"); got != 2 {
		t.Fatalf("sluice_ingest_messages_total{result=decoded}: got %v, want 2 (both copies decoded)", got)
	}

	js := jetStream(t, cfg.NATS.Listen)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, cfg.NATS.Stream)
	if err != nil {
		t.Fatal(err)
	}
	subject := "sluice.up.52f14cd4-c6f1-4fbd-8f87-4025e1d49242.a840414bf185f3b2"
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[subject]; n != 1 {
		t.Errorf("messages on %s: got %d, want 1", subject, n)
	}
}

// With the quick-start routes and no registry, a ChirpStack device and a The Things Stack
// device are accepted and their network servers' decoded objects become their readings.
func TestQuickStartLoRaWANRoutes(t *testing.T) {
	sample, err := edge.LoadConfig("../configs/sluice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := sitetest.Config(t)
	cfg.Routes, cfg.Registry, cfg.Dedup = sample.Routes, sample.Registry, sample.Dedup
	site := sitetest.Start(t, cfg)
	mosquittoPub(t, site.MQTTAddr, "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/a840414bf185f3b2/event/up",
		string(csEvent(t, "chirpstack_up_object.json", nil)), 1)
	raw, err := os.ReadFile(lorawanTestdata + "ttn_up_decoded.json")
	if err != nil {
		t.Fatal(err)
	}
	mosquittoPub(t, site.MQTTAddr, "v3/farm@acme/devices/greenhouse-co2/up", string(raw), 1)
	if n := site.WaitRows(t, "SELECT (SELECT count(*) FROM readings) + (SELECT count(*) FROM readings_text) + (SELECT count(*) FROM readings_bool)",
		9, 10*time.Second); n != 9 {
		t.Fatalf("readings: got %d rows, want 5 from the ChirpStack object (status a text, alarm a boolean) and 4 from the other", n)
	}
	if got := readingsOf(t, site.Schema, "a840414bf185f3b2"); got["temperature"] != 21.5 || got["alarm"] != 0 {
		t.Errorf("ChirpStack object readings: got %v", got)
	}
	if got := readingsOf(t, site.Schema, "a84041000181c0fe"); got["co2"] != 612 {
		t.Errorf("The Things Stack decoded_payload readings: got %v", got)
	}
}
