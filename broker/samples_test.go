package broker_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-iot/sluice/broker"
	"github.com/sluice-iot/sluice/edge"
)

// The production sample loads and validates with its users file (the example) and TLS files
// in place, and keeps anonymous access off.
func TestProductionSampleConfig(t *testing.T) {
	etc := t.TempDir()
	ca := newCA(t, "devices CA")
	_, cert, key := ca.issue(t, "127.0.0.1", true)
	os.MkdirAll(filepath.Join(etc, "tls"), 0o700)
	for src, dst := range map[string]string{cert: "tls/server.crt", key: "tls/server.key", ca.file: "tls/devices-ca.crt", "../configs/users.example.yaml": "users.yaml"} {
		raw, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(etc, dst), raw, 0o600)
	}
	raw, err := os.ReadFile("../configs/production.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SLUICE_ETC": etc}
	cfg, err := edge.ParseConfig("production.yaml", raw, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MQTT.AllowAnonymous {
		t.Error("production sample: allow_anonymous is on")
	}
	if got := len(cfg.MQTT.Listeners); got != 3 {
		t.Errorf("production sample: %d listeners, want 3", got)
	}
}

// The docker-compose example's config loads with its users file.
func TestComposeSampleConfig(t *testing.T) {
	raw, err := os.ReadFile("../deploy/compose/sluice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SLUICE_ETC": "../deploy/compose"}
	cfg, err := edge.ParseConfig("deploy/compose/sluice.yaml", raw, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MQTT.AllowAnonymous {
		t.Error("compose sample: allow_anonymous is on")
	}
}

func TestConfigAuthProblems(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listeners = []broker.ListenerConfig{{ID: "lan", Type: "tcp", Address: "0.0.0.0:1883"}, {ID: "lan", Type: "ws", Address: "127.0.0.1:8080"}}
	cfg.Auth.ACL = []broker.ACLRule{{Topic: "a/#/b", Access: "write"}}
	cfg.Auth.CertUsername = "email"
	err := cfg.Validate()
	for _, want := range []string{
		`listeners[0].address: "0.0.0.0:1883" is not loopback, but allow_anonymous is on; bind to 127.0.0.1 or turn anonymous access off`,
		`listeners[1].id: "lan" is used twice`,
		`auth.cert_username: "email" is not one of cn, san`,
		`auth.acl[0].topic: "a/#/b": # must be the last level`,
		`auth.acl[0].access: "write" is not one of publish, subscribe, all`,
	} {
		if !containsErr(err, want) {
			t.Errorf("Validate: got %v\nwant a problem containing %q", err, want)
		}
	}

	cfg = broker.DefaultConfig()
	cfg.AllowAnonymous = false
	if err := cfg.Validate(); !containsErr(err, "auth: allow_anonymous is off but no users, users_file or listener with tls.client_ca_file is configured, so no client could connect") {
		t.Errorf("no way to log in: got %v", err)
	}
}
