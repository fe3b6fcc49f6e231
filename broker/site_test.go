package broker_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/sluice-iot/sluice/broker"
	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/internal/sitetest"
)

// A full site with authentication: a device publishing to another device's topic is refused
// by MQTT 3.1.1, MQTT 5 and mosquitto_pub clients, and nothing of it is stored.
func TestSiteRefusesPublishToAnotherDevice(t *testing.T) {
	cfg := sitetest.Config(t)
	auth := authConfig(t)
	cfg.MQTT.AllowAnonymous = false
	cfg.MQTT.Auth = auth.Auth
	site := sitetest.Start(t, cfg)
	url := "tcp://" + site.MQTTAddr

	d3, err := connect3(t, url, "dev-1-v3", "dev-1", "secret-dev-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok := d3.Publish("sensors/dev-1/up", 1, false, `{"temperature":20}`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("own topic: %v", tok.Error())
	}
	d3.Publish("sensors/dev-2/up", 0, false, `{"temperature":-1}`).WaitTimeout(5 * time.Second)
	d3.Publish("sensors/dev-2/up", 1, false, `{"temperature":-2}`).WaitTimeout(2 * time.Second)

	d5, err := mqtttest.Dial5(t, site.MQTTAddr, mqtttest.Options5{ID: "dev-1-v5", Username: "dev-1", Password: "secret-dev-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if resp, _ := d5.Publish(ctx, &paho5.Publish{Topic: "sensors/dev-2/up", QoS: 1, Payload: []byte(`{"temperature":-3}`)}); resp == nil || resp.ReasonCode != 0x87 {
		t.Errorf("MQTT 5: got %+v, want PUBACK 0x87", resp)
	}
	if resp, err := d5.Publish(ctx, &paho5.Publish{Topic: "sensors/dev-1/up", QoS: 1, Payload: []byte(`{"humidity":40}`)}); err != nil || resp.ReasonCode != 0 {
		t.Errorf("MQTT 5 own topic: %v %+v", err, resp)
	}
	host, port, _ := strings.Cut(site.MQTTAddr, ":")
	exec.Command("mosquitto_pub", "-h", host, "-p", port, "-u", "dev-1", "-P", "secret-dev-1", "-q", "1",
		"-t", "sensors/dev-2/up", "-m", `{"temperature":-4}`).Run()

	if n := site.WaitRows(t, "SELECT count(*) FROM readings WHERE device = 'dev-1'", 2, 10*time.Second); n != 2 {
		t.Fatalf("dev-1 readings: got %d, want 2", n)
	}
	// Publish once more and wait for it: anything refused earlier would be stored by now.
	if resp, err := d5.Publish(ctx, &paho5.Publish{Topic: "sensors/dev-1/up", QoS: 1, Payload: []byte(`{"pressure":1000}`)}); err != nil || resp.ReasonCode != 0 {
		t.Fatalf("MQTT 5 own topic: %v %+v", err, resp)
	}
	site.WaitRows(t, "SELECT count(*) FROM readings WHERE device = 'dev-1'", 3, 10*time.Second)
	if n := pgtest.Count(t, site.Schema, "SELECT count(*) FROM readings WHERE device <> 'dev-1'"); n != 0 {
		t.Errorf("%d readings stored for another device's topic, want 0", n)
	}
}

// A WebSocket MQTT client publishes through a site and its readings arrive in the database.
func TestSiteWebSocketReadingsArrive(t *testing.T) {
	cfg := sitetest.Config(t)
	cfg.MQTT.Listeners = append(cfg.MQTT.Listeners, broker.ListenerConfig{ID: "ws", Type: "ws", Address: "127.0.0.1:0"})
	site := sitetest.Start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := site.MQTTAddrs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := connect3(t, "ws://"+addrs[1], "ws-device", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok := cl.Publish("sensors/ws-1/up", 1, false, `{"temperature":21.5,"humidity":40}`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if n := site.WaitRows(t, "SELECT count(*) FROM readings WHERE device = 'ws-1'", 2, 10*time.Second); n != 2 {
		t.Fatalf("readings from the WebSocket client: got %d, want 2", n)
	}
}
