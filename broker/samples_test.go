package broker_test

import (
	"os"
	"path/filepath"
	"testing"

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
