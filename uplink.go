package sluice

import (
	"errors"
	"fmt"
	"time"
)

// WireVersion is the version of the JSON message format written to JetStream for uplinks whose
// readings are all numbers; WireVersionTyped is the version of an uplink carrying at least one
// text, boolean or location reading. A numeric-only uplink is written exactly as before typed
// readings existed, so consumers of version 1 keep reading it. Consumers must reject (or route
// aside) messages whose "v" they do not know.
const (
	WireVersion      = 1
	WireVersionTyped = 2
)

// ValueType is the kind of value a reading holds. The zero value is a number.
type ValueType string

// The value types. A number is in Value; a boolean is in Value too, as 1 or 0 (so that a
// consumer that ignores the type still reads a number); a text is in Text; a location is in
// Location.
const (
	TypeNumber   ValueType = ""
	TypeText     ValueType = "text"
	TypeBool     ValueType = "bool"
	TypeLocation ValueType = "location"
)

// Name is the type's name in the database and in documentation: "number" for TypeNumber.
func (t ValueType) Name() string {
	if t == TypeNumber {
		return "number"
	}
	return string(t)
}

// Known reports whether t is one of the value types.
func (t ValueType) Known() bool {
	switch t {
	case TypeNumber, TypeText, TypeBool, TypeLocation:
		return true
	}
	return false
}

// Location is a position in WGS 84 degrees, with an optional altitude in metres.
type Location struct {
	Lat float64  `json:"lat"`
	Lon float64  `json:"lon"`
	Alt *float64 `json:"alt,omitempty"`
}

// Reading is one measurement of one metric at one time. Type says which field holds the value.
type Reading struct {
	Metric   string    `json:"metric"`
	Type     ValueType `json:"type,omitempty"`
	Value    float64   `json:"value"`
	Text     string    `json:"text,omitempty"`
	Location *Location `json:"location,omitempty"`
	Unit     string    `json:"unit,omitempty"`
	Time     time.Time `json:"time"`
}

// Bool is the value of a TypeBool reading.
func (r *Reading) Bool() bool { return r.Value != 0 }

// BoolReading returns a TypeBool reading of v.
func BoolReading(metric string, v bool, t time.Time) Reading {
	r := Reading{Metric: metric, Type: TypeBool, Time: t}
	if v {
		r.Value = 1
	}
	return r
}

// TextReading returns a TypeText reading of s.
func TextReading(metric, s string, t time.Time) Reading {
	return Reading{Metric: metric, Type: TypeText, Text: s, Time: t}
}

// LocationReading returns a TypeLocation reading; alt may be nil.
func LocationReading(metric string, lat, lon float64, alt *float64, t time.Time) Reading {
	return Reading{Metric: metric, Type: TypeLocation, Location: &Location{Lat: lat, Lon: lon, Alt: alt}, Time: t}
}

// typed reports whether u carries a reading that is not a number.
func (u *Uplink) typed() bool {
	for _, rs := range [2][]Reading{u.Readings, u.Suppressed} {
		for i := range rs {
			if rs[i].Type != TypeNumber {
				return true
			}
		}
	}
	return false
}

// Uplink is one decoded message from one device: the unit Sluice stores in JetStream, on
// subject UplinkSubject(Tenant, Device), de-duplicated by ID.
type Uplink struct {
	V          int       `json:"v"`
	ID         string    `json:"id"`
	Tenant     string    `json:"tenant"`
	Device     string    `json:"device"`
	Topic      string    `json:"topic,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
	Decoder    string    `json:"decoder,omitempty"`
	FPort      *int      `json:"f_port,omitempty"`
	FCnt       *uint32   `json:"f_cnt,omitempty"`
	// Data is everything the decoder returned, numeric or not, so that backends see all of it.
	Data map[string]any `json:"data,omitempty"`
	// Readings are the values to store.
	Readings []Reading `json:"readings"`
	// Suppressed names the readings that store-on-change filtered out of Readings; they are kept
	// here so that backends wanting every value still have them. The database gets Readings only.
	Suppressed []Reading `json:"suppressed,omitempty"`
	Warnings   []string  `json:"warnings,omitempty"`
	// Class is the retention class the device registry names for the device; "" leaves the
	// choice to the sink's configuration.
	Class string `json:"class,omitempty"`
	// Tags are the device's labels: the network server's device tags overlaid with the
	// registry's.
	Tags map[string]string `json:"tags,omitempty"`
}

// Failure is a message Sluice could not turn into readings: the raw payload and the reason,
// stored on ErrorSubject(Tenant, Device) so that nothing is thrown away and `sluice replay
// --errors` can try again once the decoder is fixed.
type Failure struct {
	V          int       `json:"v"`
	ID         string    `json:"id"`
	Tenant     string    `json:"tenant"`
	Device     string    `json:"device"`
	Topic      string    `json:"topic"`
	ReceivedAt time.Time `json:"received_at"`
	Decoder    string    `json:"decoder,omitempty"`
	// Reason is a short machine-readable cause: "decode", "unknown_device", "parked", ….
	Reason  string `json:"reason"`
	Error   string `json:"error"`
	Payload []byte `json:"payload"` // base64 in JSON
}

// Validate reports the first structural problem of a decoded wire message.
func (u *Uplink) Validate() error {
	switch {
	case u.V != WireVersion && u.V != WireVersionTyped:
		return fmt.Errorf("unsupported wire version %d (want %d or %d)", u.V, WireVersion, WireVersionTyped)
	case u.Tenant == "":
		return fmt.Errorf("uplink %q has no tenant", u.ID)
	case u.Device == "":
		return fmt.Errorf("uplink %q has no device", u.ID)
	}
	for _, rs := range [2][]Reading{u.Readings, u.Suppressed} {
		for i := range rs {
			if !rs[i].Type.Known() {
				return fmt.Errorf("uplink %q: reading %q has unknown type %q", u.ID, rs[i].Metric, rs[i].Type)
			}
		}
	}
	return nil
}

// ErrBufferFull is returned by a buffer that refuses a message because its disk budget is
// used up. Ingest turns it into "quota exceeded" for the publisher; nothing accepted is evicted.
var ErrBufferFull = errors.New("buffer full: disk budget used up")

// DeadLetter records what a database target refused, on DLQSubject(Target): either one reading
// (Row set) or a whole message that could not be read (Data set). Nothing a target refuses is
// dropped without one.
type DeadLetter struct {
	V        int       `json:"v"`
	Target   string    `json:"target"`
	Subject  string    `json:"subject"`            // the subject of the original message
	Sequence uint64    `json:"sequence,omitempty"` // its stream sequence
	UplinkID string    `json:"uplink_id,omitempty"`
	Tenant   string    `json:"tenant,omitempty"`
	Device   string    `json:"device,omitempty"`
	Row      *Reading  `json:"row,omitempty"`
	Data     []byte    `json:"data,omitempty"`
	SQLState string    `json:"sqlstate,omitempty"`
	Error    string    `json:"error"`
	At       time.Time `json:"at"`
}
