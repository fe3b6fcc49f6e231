package decoders

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/sluice-iot/sluice"
)

// Format is the envelope of the messages on a route.
type Format string

// The envelope formats.
const (
	// FormatRaw: the payload is the device's own bytes; ids come from the topic. "" means raw.
	FormatRaw Format = "raw"
	// FormatChirpStack: ChirpStack v4 MQTT integration events (protobuf-JSON, camelCase).
	FormatChirpStack Format = "chirpstack"
	// FormatTTN: The Things Stack v3 MQTT application messages (JSON, snake_case).
	FormatTTN Format = "ttn"
)

// Envelope reports whether f wraps the device's payload in a network server's event.
func (f Format) Envelope() bool { return f == FormatChirpStack || f == FormatTTN }

// Valid reports whether f is a known format ("" is raw).
func (f Format) Valid() bool { return f == "" || f == FormatRaw || f.Envelope() }

// Event kinds. KindUp carries a device payload; the others are recognised so that they are
// never mistaken for broken uplinks.
const (
	KindUp          = "up"
	KindJoin        = "join"
	KindStatus      = "status"
	KindLog         = "log"
	KindAck         = "ack"
	KindTxAck       = "txack"
	KindLocation    = "location"
	KindIntegration = "integration"
	KindDown        = "down"  // TTS downlink queue events
	KindOther       = "other" // a well-formed event of a kind Sluice has no use for
)

// Envelope is one network-server event, unwrapped: who sent it and what it carries. Fields a
// network server leaves out (protobuf-JSON omits false, 0 and "") are zero here.
type Envelope struct {
	Format Format
	Kind   string
	// ID is the network server's id of this event (ChirpStack deduplicationId, The Things
	// Stack "as:up:…" correlation id), the same on every redelivery; "" when there is none.
	ID string

	DevEUI      string // lower-case hex; "" when absent
	DeviceName  string // ChirpStack deviceName; The Things Stack device_id
	DeviceID    string // The Things Stack device_id; ChirpStack has none (devEui is its id)
	Tenant      string // ChirpStack tenantId; The Things Stack "app@tenant" from the topic
	Application string // ChirpStack applicationId; The Things Stack application_id
	Tags        map[string]string

	// Time is when the network server received the uplink; zero when absent.
	Time    time.Time
	FPort   *int
	FCnt    *uint32
	Payload []byte
	// Object is the payload decoded by the network server (ChirpStack object, The Things
	// Stack decoded_payload); nil when it sent none.
	Object map[string]any
	// Normalized is The Things Stack normalized_payload; nil when absent.
	Normalized []map[string]any

	Radio    *Radio        // uplinks only
	Status   *DeviceStatus // ChirpStack status events only
	Location *Location     // location events only
	// Locations are the positions The Things Stack attaches to an uplink, by source ("user",
	// "frm-payload", …); nil when it sent none.
	Locations map[string]Location
}

// Location is a position the network server resolved for a device (ChirpStack location event,
// The Things Stack location_solved).
type Location struct {
	Latitude, Longitude, Altitude float64
	Accuracy                      *float64 // metres, when given
}

// Radio is the reception of one uplink, over every gateway that heard it.
type Radio struct {
	Gateways        int
	RSSI, SNR       float64 // the best of the gateways
	HasRSSI, HasSNR bool
	SpreadingFactor int
	Bandwidth       int    // Hz
	Frequency       uint64 // Hz
	DataRate        *int
}

// DeviceStatus is a ChirpStack status event: the answer to a DevStatusReq MAC command.
type DeviceStatus struct {
	Margin             int     // dB
	ExternalPower      bool    // powered externally: no battery level
	BatteryUnavailable bool    // the device could not measure its battery
	Battery            float64 // percent
}

// EnvelopeError reports an event that is not a well-formed message of its format.
type EnvelopeError struct {
	Format Format
	Err    error
}

func (e *EnvelopeError) Error() string { return fmt.Sprintf("%s envelope: %v", e.Format, e.Err) }

func (e *EnvelopeError) Unwrap() error { return e.Err }

// Unwrap parses one event of format f published on topic. Events that are not uplinks come back
// with their Kind and no payload; only an unreadable event is an error (*EnvelopeError).
func Unwrap(f Format, topic string, payload []byte) (*Envelope, error) {
	var env *Envelope
	err := checkJSON(payload) // both formats are JSON
	switch {
	case err != nil:
	case f == FormatChirpStack:
		env, err = unwrapChirpStack(topic, payload)
	case f == FormatTTN:
		env, err = unwrapTTN(topic, payload)
	default:
		return nil, &EnvelopeError{Format: f, Err: fmt.Errorf("not an envelope format")}
	}
	if err != nil {
		return nil, &EnvelopeError{Format: f, Err: err}
	}
	env.Format = f
	return env, nil
}

// ObjectReadings turns the network server's decoded object into readings at time t: the
// decoded object when there is one, else the normalized payload. ok is false when the
// envelope carries neither.
func (e *Envelope) ObjectReadings(t time.Time) (data map[string]any, readings []sluice.Reading, ok bool) {
	switch {
	case e.Object != nil:
		return e.Object, Flatten(e.Object, t), true
	case len(e.Normalized) > 0:
		return map[string]any{"normalized": normalizedAny(e.Normalized)}, normalizedReadings(e.Normalized, t), true
	}
	return nil, nil, false
}

func normalizedAny(ms []map[string]any) []any {
	out := make([]any, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}

// RadioReadings are the lora.* readings of an uplink's reception at time t: best RSSI and SNR,
// gateway count, frame counter, spreading factor and frequency, each when known, and the
// locations The Things Stack attached, as location readings lora.location.<source>.
func (e *Envelope) RadioReadings(t time.Time) []sluice.Reading {
	var out []sluice.Reading
	for _, source := range slices.Sorted(maps.Keys(e.Locations)) {
		l := e.Locations[source]
		alt := l.Altitude
		out = append(out, sluice.LocationReading("lora.location."+source, l.Latitude, l.Longitude, &alt, t))
	}
	add := func(metric, unit string, v float64) {
		out = append(out, sluice.Reading{Metric: metric, Value: v, Unit: unit, Time: t})
	}
	if e.FCnt != nil {
		add("lora.fcnt", "", float64(*e.FCnt))
	}
	if r := e.Radio; r != nil {
		if r.Frequency > 0 {
			add("lora.frequency", "Hz", float64(r.Frequency))
		}
		if r.Gateways > 0 {
			add("lora.gateways", "", float64(r.Gateways))
		}
		if r.HasRSSI {
			add("lora.rssi", "dBm", r.RSSI)
		}
		if r.SpreadingFactor > 0 {
			add("lora.sf", "", float64(r.SpreadingFactor))
		}
		if r.HasSNR {
			add("lora.snr", "dB", r.SNR)
		}
	}
	return out
}

// StatusReadings are the readings of a status event at time t: lora.margin, lora.external_power
// (a boolean) and, when the device measured it, lora.battery.
func (e *Envelope) StatusReadings(t time.Time) []sluice.Reading {
	s := e.Status
	if s == nil {
		return nil
	}
	var out []sluice.Reading
	if !s.ExternalPower && !s.BatteryUnavailable {
		out = append(out, sluice.Reading{Metric: "lora.battery", Value: s.Battery, Unit: "%", Time: t})
	}
	return append(out,
		sluice.BoolReading("lora.external_power", s.ExternalPower, t),
		sluice.Reading{Metric: "lora.margin", Value: float64(s.Margin), Unit: "dB", Time: t},
	)
}

// LocationReadings are the readings of a location event at time t: the position as the
// location reading lora.location and, when given, lora.accuracy.
func (e *Envelope) LocationReadings(t time.Time) []sluice.Reading {
	l := e.Location
	if l == nil {
		return nil
	}
	alt := l.Altitude
	out := []sluice.Reading{sluice.LocationReading("lora.location", l.Latitude, l.Longitude, &alt, t)}
	if l.Accuracy != nil {
		out = append([]sluice.Reading{{Metric: "lora.accuracy", Value: *l.Accuracy, Unit: "m", Time: t}}, out...)
	}
	return out
}
