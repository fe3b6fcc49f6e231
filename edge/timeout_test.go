package edge_test

import (
	"context"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/sitetest"
)

// A QoS 1 publish whose JetStream acknowledgement does not come within nats.publish_timeout
// has an unknown outcome: it may be stored. It must not be answered with a failure code (an
// MQTT 5 client would take the message as refused and publish it anew, under a new packet id
// that de-duplication cannot match); the PUBACK is withheld, so the client keeps it and resends
// it with the same packet id, which the buffer's duplicate window stores once.
func TestPublishTimeoutWithholdsPuback(t *testing.T) {
	cfg := sitetest.Config(t)
	cfg.NATS.PublishTimeout = time.Nanosecond // every acknowledgement comes too late
	site := sitetest.Start(t, cfg)
	v5 := mqtttest.Connect5(t, site.MQTTAddr, "timeout-v5")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	pr, err := v5.Publish(ctx, &paho5.Publish{Topic: "sensors/slow/up", QoS: 1, Payload: []byte(`{"temp":21.5}`)})
	if pr != nil && pr.ReasonCode >= 0x80 {
		t.Fatalf("PUBACK reason %#x for a publish that may be stored (%v); want no PUBACK", pr.ReasonCode, err)
	}
	if n := site.WaitRows(t, "SELECT count(*) FROM readings", 1, 30*time.Second); n != 1 {
		t.Fatalf("got %d readings, want 1: the late-acknowledged uplink is stored", n)
	}
}
