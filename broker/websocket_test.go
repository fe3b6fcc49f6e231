package broker_test

import (
	"crypto/tls"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluice-iot/sluice/broker"
	"github.com/sluice-iot/sluice/internal/mqtttest"
)

func TestWebSocket(t *testing.T) {
	ca := newCA(t, "sluice test CA")
	_, certFile, keyFile := ca.issue(t, "127.0.0.1", true)
	dev1, _, _ := ca.issue(t, "dev-1", false)
	cfg := authConfig(t)
	cfg.Listeners = []broker.ListenerConfig{
		{ID: "tcp", Type: "tcp", Address: "127.0.0.1:0"},
		{ID: "ws", Type: "ws", Address: "127.0.0.1:0"},
		{ID: "wss", Type: "wss", Address: "127.0.0.1:0", TLS: broker.TLSConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: ca.file, ClientCerts: "optional"}},
	}
	b := start(t, cfg)
	addrs := b.Addrs()
	var seen collector
	mon, err := connect3(t, "ws://"+addrs[1], "monitor", "monitor", "secret-monitor", nil)
	if err != nil {
		t.Fatalf("connect over ws: %v", err)
	}
	if tok := mon.Subscribe("sensors/#", 1, seen.handler); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	ws, err := connect3(t, "ws://"+addrs[1], "dev-2", "dev-2", "secret-dev-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok := ws.Publish("sensors/dev-2/up", 1, false, "over ws"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish over ws: %v", tok.Error())
	}
	wss, err := connect3(t, "wss://"+addrs[2], "dev-1", "", "", &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{dev1}})
	if err != nil {
		t.Fatalf("connect over wss with a client certificate: %v", err)
	}
	if tok := wss.Publish("sensors/dev-1/up", 1, false, "over wss"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish over wss: %v", tok.Error())
	}
	big := strings.Repeat("x", 100<<10) // spans many WebSocket reads
	if tok := ws.Publish("sensors/dev-2/up", 1, false, big); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish 100KiB over ws: %v", tok.Error())
	}
	mqtttest.WaitFor(t, 10*time.Second, "three messages over WebSocket", func() bool { return len(seen.list()) >= 3 })
	// Messages from different clients may arrive in any order.
	got := seen.list()
	sort.Strings(got)
	want := []string{"sensors/dev-1/up over wss", "sensors/dev-2/up over ws", "sensors/dev-2/up " + big}
	sort.Strings(want)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("received %.80q", got)
	}
}
