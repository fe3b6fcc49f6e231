package edge_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-iot/sluice/decoders"
	"github.com/sluice-iot/sluice/hooks"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/internal/sitetest"
)

// A ChirpStack uplink routed to a shipped device template: the JavaScript decoder runs inline
// and its readings arrive with the template's units.
func TestTemplateDecoderEndToEnd(t *testing.T) {
	cfg := sitetest.Config(t)
	cfg.Decoders.TemplatesDir = "../configs/templates"
	cfg.Routes = append(cfg.Routes, hooks.RouteConfig{
		Topic: "application/+/device/+/event/up", Format: decoders.FormatChirpStack, Decoder: "dragino/lht65",
	})
	site := sitetest.Start(t, cfg)

	// The LHT65 manual's example frame, CB F6 0B 0D 03 76 01 0A DD 7F FF, on fPort 2.
	event := `{"deduplicationId":"3b8e9d1c-0000-4000-8000-000000000001","time":"2026-03-01T10:00:00Z",
	  "deviceInfo":{"tenantId":"52f14cd4-c6f1-4fbd-8f87-4025e1d49242","tenantName":"acme","applicationId":"app-1",
	    "deviceName":"lht65-kitchen","devEui":"A84041000181C6B1"},
	  "fCnt":7,"fPort":2,"data":"y/YLDQN2AQrdf/8=","rxInfo":[{"gatewayId":"0016c001ff10a235","rssi":-57,"snr":9.5}]}`
	mosquittoPub(t, site.MQTTAddr, "application/app-1/device/a84041000181c6b1/event/up", event, 1)

	if n := site.WaitRows(t, "SELECT count(*) FROM readings WHERE device = 'a84041000181c6b1'", 4, 10*time.Second); n < 4 {
		t.Fatalf("got %d readings for the device, want at least 4", n)
	}
	type row struct {
		value float64
		unit  string
	}
	want := map[string]row{
		"temperature":     {28.29, "°C"},
		"humidity":        {88.6, "%"},
		"battery_voltage": {3.062, "V"},
		"ext_temperature": {27.81, "°C"},
	}
	pgtest.Query(t, site.Schema, func(conn *pgx.Conn) error {
		for metric, w := range want {
			var got row
			err := conn.QueryRow(context.Background(),
				"SELECT value, unit FROM readings WHERE device = 'a84041000181c6b1' AND metric = $1", metric).Scan(&got.value, &got.unit)
			if err != nil {
				t.Errorf("%s: %v", metric, err)
				continue
			}
			if got != w {
				t.Errorf("%s: got %+v, want %+v", metric, got, w)
			}
		}
		return nil
	})
}
