package sink_test

import (
	"testing"
	"time"

	"github.com/sluice-iot/sluice"
)

// BenchmarkSinkDecode is the sink's decode of one stored message (sluice.DecodeUplinkForStore,
// as the target's loop calls it before a batch is written), for the uplinks ingest writes:
//
//   - json: a JSON payload of four numbers and a time, decoded by the json decoder;
//   - chirpstack: a ChirpStack uplink with its object, radio readings, tags and fCnt/fPort;
//   - suppressed: store-on-change kept one reading of eight, the rest go to suppressed;
//   - escaped: names and units with non-ASCII bytes and escapes (°C, "quoted").
func BenchmarkSinkDecode(b *testing.B) {
	for _, c := range []struct {
		name string
		u    *sluice.Uplink
	}{
		{"json", jsonUplink()},
		{"chirpstack", chirpStackUplink()},
		{"suppressed", suppressedUplink()},
		{"escaped", escapedUplink()},
	} {
		data, err := sluice.EncodeUplink(c.u)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := sluice.DecodeUplinkForStore(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var benchTime = time.Date(2026, 11, 26, 13, 4, 5, 123456000, time.UTC)

func jsonUplink() *sluice.Uplink {
	return &sluice.Uplink{ID: "0c5d5e4f0a6b4c4d9e8f7a6b5c4d3e2f", Tenant: "bench", Device: "bench-0001",
		Topic: "sensors/bench-0001/up", ReceivedAt: benchTime, Decoder: "json",
		Data: map[string]any{"temperature": 21.37, "humidity": 45.2, "pressure": 1013.25, "battery": 3.61,
			"time": "2026-11-26T13:04:05.123456Z"},
		Readings: []sluice.Reading{{Metric: "battery", Value: 3.61, Time: benchTime}, {Metric: "humidity", Value: 45.2, Time: benchTime},
			{Metric: "pressure", Value: 1013.25, Time: benchTime}, {Metric: "temperature", Value: 21.37, Time: benchTime}}}
}

func chirpStackUplink() *sluice.Uplink {
	port, cnt := 2, uint32(10421)
	rs := []sluice.Reading{
		{Metric: "temperature", Value: 21.5, Unit: "Cel", Time: benchTime},
		{Metric: "humidity", Value: 48, Unit: "%RH", Time: benchTime},
		{Metric: "battery", Value: 3.02, Unit: "V", Time: benchTime},
	}
	for _, m := range []string{"lora.rssi", "lora.snr", "lora.gateways", "lora.f_cnt", "lora.sf", "lora.frequency"} {
		rs = append(rs, sluice.Reading{Metric: m, Value: -97.5, Time: benchTime})
	}
	return &sluice.Uplink{ID: "1f0d7c3e-6f7e-4a4f-9d3a-0b2c5e8f9a1b/up", Tenant: "farm-b", Device: "a840414bf185f3b2",
		Topic: "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/a840414bf185f3b2/event/up", ReceivedAt: benchTime,
		Decoder: "network:chirpstack", FPort: &port, FCnt: &cnt, Class: "long",
		Data: map[string]any{"temperature": 21.5, "humidity": 48.0, "battery": 3.02,
			"status": map[string]any{"door": "closed", "alarm": false}, "samples": []any{21.4, 21.5, 21.5}},
		Readings: rs, Tags: map[string]string{"site": "field", "row": "7"}}
}

func suppressedUplink() *sluice.Uplink {
	u := jsonUplink()
	for i := range 4 {
		u.Suppressed = append(u.Suppressed, sluice.Reading{Metric: "level_" + string(rune('a'+i)), Value: float64(i), Time: benchTime})
	}
	u.Suppressed = append(u.Suppressed, u.Readings[1:]...)
	u.Readings = u.Readings[:1]
	return u
}

func escapedUplink() *sluice.Uplink {
	u := jsonUplink()
	u.Device = "salle-été-3"
	u.Warnings = []string{`field "t2" is not a number`}
	for i := range u.Readings {
		u.Readings[i].Unit = "°C"
	}
	u.Data["note"] = "line 1\nline \"2\""
	return u
}
