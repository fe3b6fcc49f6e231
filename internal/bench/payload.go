package bench

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"time"
)

// Payload kinds.
const (
	PayloadJSON       = "json"
	PayloadChirpStack = "chirpstack"
	PayloadLPP        = "lpp"
)

// payloadKind describes what one kind of message looks like on the wire and in the database.
type payloadKind struct {
	// readings is how many rows one message gives.
	readings int
	// topic is the MQTT topic of device dev (dev is the device's index).
	topic func(dev int) string
	// probeMetric is the metric whose rows tell when a device's message became visible.
	probeMetric string
	// device is the device id Sluice derives from the topic or payload.
	device func(dev int) string
	// appendPayload appends message seq of device dev, published at now.
	appendPayload func(b []byte, dev int, seq uint64, now time.Time) []byte
}

func kindOf(name string) (payloadKind, error) {
	switch name {
	case PayloadJSON:
		return payloadKind{
			readings:    4,
			topic:       func(dev int) string { return "sensors/" + deviceName(dev) + "/up" },
			device:      deviceName,
			probeMetric: "temperature",
			appendPayload: func(b []byte, dev int, seq uint64, now time.Time) []byte {
				// Four numeric fields that change with every message, and the publish time, so
				// that the row's time is when the message left the generator.
				// Consecutive values jump by large steps, beyond any sensible deadband.
				v := float64(vary(seq, 3000))
				b = append(b, `{"temperature":`...)
				b = strconv.AppendFloat(b, 10+v/100, 'f', 2, 64)
				b = append(b, `,"humidity":`...)
				b = strconv.AppendFloat(b, 20+v/50, 'f', 2, 64)
				b = append(b, `,"pressure":`...)
				b = strconv.AppendFloat(b, 950+v/30, 'f', 2, 64)
				b = append(b, `,"battery":`...)
				b = strconv.AppendFloat(b, 2.5+v/2000, 'f', 3, 64)
				b = append(b, `,"time":"`...)
				b = now.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
				return append(b, `"}`...)
			},
		}, nil
	case PayloadLPP:
		return payloadKind{
			readings:    4,
			topic:       func(dev int) string { return "lpp/" + deviceName(dev) + "/up" },
			device:      deviceName,
			probeMetric: "temperature_1",
			appendPayload: func(b []byte, dev int, seq uint64, _ time.Time) []byte {
				t := int16(100 + vary(seq, 300))   // 10.0 .. 39.9 °C
				h := byte(40 + vary(seq, 120))     // 20 .. 79.5 %
				p := uint16(9500 + vary(seq, 900)) // 950.0 .. 1039.9 hPa
				v := uint16(250 + vary(seq, 170))  // 2.50 .. 4.19 V
				return append(b,
					1, 103, byte(t>>8), byte(t),
					2, 104, h,
					3, 115, byte(p>>8), byte(p),
					4, 116, byte(v>>8), byte(v))
			},
		}, nil
	case PayloadChirpStack:
		return payloadKind{
			readings:    6, // 4 numbers and 2 texts (battery status, probe kind)
			topic:       func(dev int) string { return "application/bench/device/" + devEUI(dev) + "/event/up" },
			device:      devEUI,
			probeMetric: "temperature",
			appendPayload: func(b []byte, dev int, seq uint64, now time.Time) []byte {
				// A ChirpStack v4 "up" event carrying a Dragino LHT65 frame (11 bytes, fPort 2):
				// battery, SHT20 temperature and humidity, and an external temperature probe.
				t := int16(1000 + vary(seq, 2500))
				e := int16(500 + vary(seq, 3000))
				h := uint16(200 + vary(seq, 700))
				bat := uint16(0xC000 | (2700 + vary(seq, 600)))
				frame := []byte{byte(bat >> 8), byte(bat), byte(t >> 8), byte(t), byte(h >> 8), byte(h),
					1, byte(e >> 8), byte(e), 0x7F, 0xFF}
				var data [16]byte
				base64.StdEncoding.Encode(data[:], frame)
				eui := devEUI(dev)
				b = append(b, `{"deduplicationId":"`...)
				b = fmt.Appendf(b, "%08x-0000-4000-8000-%012x", dev, seq)
				b = append(b, `","time":"`...)
				b = now.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
				b = append(b, `","deviceInfo":{"tenantId":"52f14cd4-c6f1-4fbd-8f87-4025e1d49242","tenantName":"bench",`+
					`"applicationId":"bench","applicationName":"bench","deviceProfileId":"a4b1e2b3-0000-4000-8000-000000000065",`+
					`"deviceProfileName":"Dragino LHT65","deviceName":"lht65-`...)
				b = strconv.AppendInt(b, int64(dev), 10)
				b = append(b, `","devEui":"`...)
				b = append(b, eui...)
				b = append(b, `","deviceClassEnabled":"CLASS_A","tags":{}},"devAddr":"01`...)
				b = append(b, eui[10:]...)
				b = append(b, `","adr":true,"dr":5,"fCnt":`...)
				b = strconv.AppendUint(b, seq, 10)
				b = append(b, `,"fPort":2,"confirmed":false,"data":"`...)
				b = append(b, data[:]...)
				b = append(b, `","rxInfo":[{"gatewayId":"0016c001ff10a235","uplinkId":`...)
				b = strconv.AppendUint(b, seq%65536, 10)
				b = append(b, `,"rssi":-57,"snr":10.2,"channel":2,"location":{},"context":"EFwMtA==","metadata":{"region_config_id":"eu868"},"crcStatus":"CRC_OK"}],`+
					`"txInfo":{"frequency":868500000,"modulation":{"lora":{"bandwidth":125000,"spreadingFactor":7,"codeRate":"CR_4_5"}}}}`...)
				return b
			},
		}, nil
	default:
		return payloadKind{}, fmt.Errorf("payload %q: want json, chirpstack or lpp", name)
	}
}

// vary maps a message sequence to 0..n-1 so that consecutive messages differ by about n/3:
// every value changes a lot, so store-on-change never hides load.
func vary(seq uint64, n uint64) uint64 { return (seq * (n/3 + 1)) % n }

func deviceName(dev int) string { return fmt.Sprintf("bench-%04d", dev) }

func devEUI(dev int) string { return fmt.Sprintf("a84041%010x", dev) }
