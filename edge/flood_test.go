package edge_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/hooks"
	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/sitetest"
)

// floodConfig limits every device to 1,000 messages a second with a burst of 1,000 (the
// normal devices below never reach it, however fast the machine) and devices named flood-*
// to a burst of 10 refilled at one message in 1,000 seconds: exactly 10 of theirs get in.
func floodConfig(t *testing.T) edge.Config {
	cfg := sitetest.Config(t)
	cfg.Limits.Device = hooks.Rate{Rate: 1000, Burst: 1000}
	cfg.Limits.Overrides = []hooks.RateOverride{{Device: "flood-*", Rate: 0.001, Burst: 10}}
	return cfg
}

const floodBurst = 10

// waitCounter polls a counter of the site until it reaches want (the test's messages have
// all been judged) and fails when it does not within 30 s or goes beyond.
func waitCounter(t *testing.T, site *sitetest.Site, name, labels string, want float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := gauge(t, site.Registry(), name, labels)
		if got == want {
			return
		}
		if got > want || time.Now().After(deadline) {
			t.Fatalf("%s{%s}: got %v, want %v", name, labels, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// deviceRows waits for at least want rows of device and returns how many there are.
func deviceRows(t *testing.T, site *sitetest.Site, device string, want int64) int64 {
	t.Helper()
	return site.WaitRows(t, fmt.Sprintf("SELECT count(*) FROM readings WHERE device = '%s' AND metric = 'seq'", device), want, 30*time.Second)
}

// MQTT 3.1.1: the flooding device's QoS 1 publishes beyond its burst get no PUBACK (the client
// keeps them to resend after reconnecting), its QoS 0 publishes are dropped; a device at a
// normal rate on another connection loses nothing.
func TestFloodLimitMQTT311(t *testing.T) {
	site := sitetest.Start(t, floodConfig(t))
	flood := mqtttest.Connect(t, site.MQTTAddr, "flood-v3")
	defer flood.Disconnect(100)
	normal := mqtttest.Connect(t, site.MQTTAddr, "normal-v3")
	defer normal.Disconnect(100)

	const floodQoS1, floodQoS0, normalN = 50, 20, 200
	var toks []paho.Token
	for i := range floodQoS1 {
		toks = append(toks, flood.Publish("sensors/flood-v3/up", 1, false, fmt.Sprintf(`{"seq":%d}`, i)))
	}
	for i := range floodQoS0 {
		flood.Publish("sensors/flood-v3/up", 0, false, fmt.Sprintf(`{"seq":%d}`, 1000+i))
	}
	for i := range normalN {
		if tok := normal.Publish("sensors/normal-v3/up", 1, false, fmt.Sprintf(`{"seq":%d}`, i)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("normal device, message %d: not acknowledged: %v", i, tok.Error())
		}
	}
	waitCounter(t, site, "sluice_limit_messages_total", "qos=1", floodQoS1-floodBurst)
	waitCounter(t, site, "sluice_limit_messages_total", "qos=0", floodQoS0)
	for i, tok := range toks {
		if i < floodBurst {
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("flood message %d (within the burst): not acknowledged: %v", i, tok.Error())
			}
			continue
		}
		select {
		case <-tok.Done(): // every publish was judged (the counter says so): none may be acked
			t.Fatalf("flood message %d (over the limit): acknowledged (err %v), want no PUBACK", i, tok.Error())
		default:
		}
	}

	if n := site.WaitRows(t, "SELECT count(*) FROM readings WHERE device = 'normal-v3'", normalN, 30*time.Second); n != normalN {
		t.Fatalf("normal device: %d rows, want %d", n, normalN)
	}
	if n := deviceRows(t, site, "flood-v3", floodBurst); n != floodBurst {
		t.Fatalf("flooding device: %d rows, want its burst of %d", n, floodBurst)
	}
	if got := gauge(t, site.Registry(), "sluice_limit_messages_total", "reason=device"); got != floodQoS1-floodBurst+floodQoS0 {
		t.Fatalf("sluice_limit_messages_total{reason=device}: got %v, want %d", got, floodQoS1-floodBurst+floodQoS0)
	}
}

// MQTT 5: beyond its burst the flooding device's QoS 1 publishes get PUBACK reason 0x96
// "message rate too high", a QoS 2 one PUBREC 0x96, and its QoS 0 ones are dropped; the
// normal device loses nothing.
func TestFloodLimitMQTT5(t *testing.T) {
	site := sitetest.Start(t, floodConfig(t))
	flood := mqtttest.Connect5(t, site.MQTTAddr, "flood-v5")
	normal := mqtttest.Connect5(t, site.MQTTAddr, "normal-v5")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const floodQoS1, floodQoS0, normalN = 50, 20, 200
	codes := map[byte]int{}
	for i := range floodQoS1 {
		pr, err := flood.Publish(ctx, &paho5.Publish{Topic: "sensors/flood-v5/up", QoS: 1, Payload: fmt.Appendf(nil, `{"seq":%d}`, i)})
		if pr == nil {
			t.Fatalf("flood message %d: no PUBACK: %v", i, err)
		}
		if (pr.ReasonCode == 0) != (err == nil) {
			t.Fatalf("flood message %d: reason 0x%02x with error %v", i, pr.ReasonCode, err)
		}
		codes[pr.ReasonCode]++
	}
	if codes[0x00] != floodBurst || codes[0x96] != floodQoS1-floodBurst || len(codes) != 2 {
		t.Fatalf("flood PUBACK reason codes: got %v, want %d × 0x00 then %d × 0x96", codes, floodBurst, floodQoS1-floodBurst)
	}
	if pr, _ := flood.Publish(ctx, &paho5.Publish{Topic: "sensors/flood-v5/up", QoS: 2, Payload: []byte(`{"seq":999}`)}); pr == nil || pr.ReasonCode != 0x96 {
		t.Fatalf("flood qos 2 message: got %+v, want PUBREC reason 0x96", pr)
	}
	for i := range floodQoS0 {
		if _, err := flood.Publish(ctx, &paho5.Publish{Topic: "sensors/flood-v5/up", QoS: 0, Payload: fmt.Appendf(nil, `{"seq":%d}`, 1000+i)}); err != nil {
			t.Fatalf("flood qos 0 message %d: %v", i, err)
		}
	}
	for i := range normalN {
		pr, err := normal.Publish(ctx, &paho5.Publish{Topic: "sensors/normal-v5/up", QoS: 1, Payload: fmt.Appendf(nil, `{"seq":%d}`, i)})
		if err != nil || pr.ReasonCode != 0 {
			t.Fatalf("normal device, message %d: %v", i, err)
		}
	}
	waitCounter(t, site, "sluice_limit_messages_total", "qos=0", floodQoS0)

	if n := site.WaitRows(t, "SELECT count(*) FROM readings WHERE device = 'normal-v5'", normalN, 30*time.Second); n != normalN {
		t.Fatalf("normal device: %d rows, want %d", n, normalN)
	}
	if n := deviceRows(t, site, "flood-v5", floodBurst); n != floodBurst {
		t.Fatalf("flooding device: %d rows, want its burst of %d", n, floodBurst)
	}
}
