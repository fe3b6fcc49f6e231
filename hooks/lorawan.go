package hooks

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/decoders"
)

// LoRaWANRouteConfig holds the options of a route whose format is chirpstack or ttn.
type LoRaWANRouteConfig struct {
	// DeviceID names the device: dev_eui (default; lower-case hex), name (ChirpStack
	// deviceName, The Things Stack device_id) or id (The Things Stack device_id, else DevEUI).
	DeviceID string `yaml:"device_id"`
	// Prefer decides between a local decoder and the network server's decoded object when
	// both exist: local (default) or network.
	Prefer string `yaml:"prefer"`
	// UnknownDevices is what happens to a device the registry does not list: accept (default:
	// the route's decoder or the network server's object), park (stored on the error subject
	// with reason "parked", for replay once registered) or reject (counted, stored on the
	// error subject with reason "rejected").
	UnknownDevices string `yaml:"unknown_devices"`
	// RadioReadings adds lora.* readings to every uplink: best RSSI and SNR, gateway count,
	// fCnt, spreading factor, frequency.
	RadioReadings bool `yaml:"radio_readings"`
}

// Unknown-device policies.
const (
	PolicyAccept = "accept"
	PolicyPark   = "park"
	PolicyReject = "reject"
)

func (c RouteConfig) validateLoRaWAN() error {
	var errs []error
	l := c.LoRaWAN
	if !c.Format.Valid() {
		return fmt.Errorf("format: %q is not one of raw, chirpstack, ttn", c.Format)
	}
	if !c.Format.Envelope() {
		if l != (LoRaWANRouteConfig{}) {
			errs = append(errs, errors.New("device_id, prefer, unknown_devices, radio_readings: only with format chirpstack or ttn"))
		}
		if c.Decoder == "" {
			errs = append(errs, errors.New("decoder: required with format raw"))
		}
		return errors.Join(errs...)
	}
	switch l.DeviceID {
	case "", "dev_eui", "name", "id":
	default:
		errs = append(errs, fmt.Errorf("device_id: %q is not one of dev_eui, name, id", l.DeviceID))
	}
	switch l.Prefer {
	case "", "local", "network":
	default:
		errs = append(errs, fmt.Errorf("prefer: %q is not one of local, network", l.Prefer))
	}
	switch l.UnknownDevices {
	case "", PolicyAccept, PolicyPark, PolicyReject:
	default:
		errs = append(errs, fmt.Errorf("unknown_devices: %q is not one of accept, park, reject", l.UnknownDevices))
	}
	return errors.Join(errs...)
}

// prefixed splits a joined error into its problems, each prefixed with a key path.
func prefixed(prefix string, err error) []error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, len(list))
	for i, e := range list {
		out[i] = fmt.Errorf("%s%w", prefix, e)
	}
	return out
}

// loraStage is what ingest needs for LoRaWAN envelopes besides decoders: the device registry
// and the de-duplication window, both optional.
type loraStage struct {
	registry *Registry
	dedup    *Dedup
	m        *loraMetrics
}

// UseLoRaWAN gives the ingest hook a device registry and a de-duplication window for its
// chirpstack and ttn routes; either may be nil. Call it before the broker starts.
func (h *Ingest) UseLoRaWAN(registry *Registry, dedup *Dedup) {
	h.lora.registry, h.lora.dedup = registry, dedup
}

// handleEnvelope is Handle for a chirpstack or ttn route: unwrap, identify, de-duplicate,
// apply the unknown-device policy, decode (the device's decoder, the route's, or the network
// server's object), store.
func (h *Ingest) handleEnvelope(ctx context.Context, msg *Message, m Match) error {
	start := time.Now()
	recv := start.UTC()
	rc := m.Route
	lm := h.lora.m
	env, err := decoders.Unwrap(rc.Format, msg.Topic, msg.Payload)
	if err != nil {
		lm.events.WithLabelValues(string(rc.Format), "invalid").Inc()
		id, msgID := uplinkID(msg)
		return h.deliver(ctx, msg, msgID, nil, &sluice.Failure{
			ID: id, Tenant: orUnknown(m.Tenant), Device: firstOf(m.Device, topicDevice(msg.Topic), "unknown"), Topic: msg.Topic, ReceivedAt: recv,
			Reason: "envelope", Error: err.Error(), Payload: msg.Payload,
		})
	}
	device := deviceID(env, rc.LoRaWAN.DeviceID, m.Device)
	var entry *Device
	if h.lora.registry != nil {
		entry = h.lora.registry.Lookup(device, env.DevEUI, env.DeviceName, env.DeviceID)
	}
	tenant := firstOf(entryTenant(entry), m.Tenant, env.Tenant, "default")
	switch env.Kind {
	case decoders.KindUp, decoders.KindStatus, decoders.KindLocation:
	case decoders.KindJoin:
		lm.events.WithLabelValues(string(rc.Format), env.Kind).Inc()
		if h.lora.dedup != nil {
			h.lora.dedup.Reset(device) // a (re)joined device counts its frames from 0 again
		}
		return nil
	default:
		lm.events.WithLabelValues(string(rc.Format), env.Kind).Inc()
		return nil
	}
	lm.events.WithLabelValues(string(rc.Format), env.Kind).Inc()

	id, msgID := uplinkID(msg)
	if env.ID != "" { // the network server's id: a redelivered or re-sent event is stored once
		id = env.ID + "/" + env.Kind
		msgID = id
	}
	fail := func(reason, text string) error {
		return h.deliver(ctx, msg, msgID, nil, &sluice.Failure{
			ID: id, Tenant: tenant, Device: device, Topic: msg.Topic, ReceivedAt: recv,
			Reason: reason, Error: text, Payload: msg.Payload,
		})
	}

	var claim *dedupClaim
	if env.Kind == decoders.KindUp && h.lora.dedup != nil {
		var dup bool
		if claim, dup = h.lora.dedup.Claim(device, *env.FCnt, *env.FPort, env.Payload); dup {
			return nil
		}
	}
	err = h.envelopeUplink(ctx, msg, m, env, entry, tenant, device, id, msgID, recv, fail)
	if err != nil && claim != nil {
		claim.Release() // not stored: the resend must not be taken for a duplicate
	}
	h.m.decodeSeconds.Observe(time.Since(start).Seconds())
	return err
}

func (h *Ingest) envelopeUplink(ctx context.Context, msg *Message, m Match, env *decoders.Envelope, entry *Device,
	tenant, device, id, msgID string, recv time.Time, fail func(reason, text string) error) error {
	rc := m.Route
	lm := h.lora.m
	if entry == nil {
		switch rc.LoRaWAN.UnknownDevices {
		case PolicyPark:
			lm.unknown.WithLabelValues(PolicyPark).Inc()
			return fail("parked", "device "+device+" is not in the registry")
		case PolicyReject:
			lm.unknown.WithLabelValues(PolicyReject).Inc()
			return fail("rejected", "device "+device+" is not in the registry")
		default:
			lm.unknown.WithLabelValues(PolicyAccept).Inc()
		}
	}
	at := recv
	if !env.Time.IsZero() {
		at = env.Time
	}
	u := &sluice.Uplink{
		ID: id, Tenant: tenant, Device: device, Topic: msg.Topic, ReceivedAt: recv,
		FPort: env.FPort, FCnt: env.FCnt, Tags: env.Tags,
	}
	if entry != nil {
		u.Class = entry.Class
		if len(entry.Tags) > 0 {
			u.Tags = make(map[string]string, len(env.Tags)+len(entry.Tags))
			maps.Copy(u.Tags, env.Tags)
			maps.Copy(u.Tags, entry.Tags)
		}
	}
	switch env.Kind {
	case decoders.KindStatus:
		u.Decoder = string(rc.Format) + ":status"
		u.Readings = env.StatusReadings(at)
		return h.deliver(ctx, msg, msgID, u, nil)
	case decoders.KindLocation:
		u.Decoder = string(rc.Format) + ":location"
		u.Readings = env.LocationReadings(at)
		return h.deliver(ctx, msg, msgID, u, nil)
	}

	decoder := rc.Decoder
	var vars map[string]string
	if entry != nil {
		vars = entry.Variables
		if entry.Decoder != "" {
			decoder = entry.Decoder
		}
	}
	useObject := decoder == "" || rc.LoRaWAN.Prefer == "network" && env.Object != nil
	var ok bool
	if useObject {
		u.Decoder = "network:" + string(rc.Format)
		if u.Data, u.Readings, ok = env.ObjectReadings(at); !ok {
			return fail("no_decoder", "device "+device+" has no decoder and the network server sent no decoded object")
		}
	} else {
		dec, found := h.decoders.Lookup(decoder)
		if !found {
			return fail("decode", fmt.Sprintf("decoder %q of device %s is not loaded", decoder, device))
		}
		out, err := dec.Decode(ctx, &decoders.Input{
			Bytes: env.Payload, FPort: *env.FPort, RecvTime: at, Variables: vars, Tenant: tenant, Device: device,
		})
		if err != nil {
			lm.decodeFailed.Inc()
			f := &sluice.Failure{
				ID: id, Tenant: tenant, Device: device, Topic: msg.Topic, ReceivedAt: recv,
				Decoder: dec.Name(), Reason: "decode", Error: err.Error(), Payload: msg.Payload,
			}
			return h.deliver(ctx, msg, msgID, nil, f)
		}
		u.Decoder, u.Data, u.Readings, u.Warnings = dec.Name(), out.Data, out.Readings, out.Warnings
	}
	if rc.LoRaWAN.RadioReadings {
		u.Readings = append(u.Readings, env.RadioReadings(at)...)
	}
	return h.deliver(ctx, msg, msgID, u, nil)
}

// deviceID names the device of an envelope as the route asks, falling back to whatever id the
// envelope (or the topic) has.
func deviceID(env *decoders.Envelope, how, topicDevice string) string {
	var pick string
	switch how {
	case "name":
		pick = env.DeviceName
	case "id":
		pick = firstOf(env.DeviceID, env.DevEUI)
	default:
		pick = env.DevEUI
	}
	return firstOf(pick, env.DevEUI, env.DeviceID, env.DeviceName, topicDevice, "unknown")
}

func entryTenant(d *Device) string {
	if d == nil {
		return ""
	}
	return d.Tenant
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func orUnknown(s string) string { return firstOf(s, "unknown") }

// topicDevice is the device level of a network server's default topic, for an event too broken
// to name its device: ChirpStack application/<app>/device/<devEUI>/event/<type>, The Things
// Stack v3/<app>/devices/<device>/<kind>. "" for other topics.
func topicDevice(topic string) string {
	levels := strings.Split(topic, "/")
	for i := 0; i+1 < len(levels); i++ {
		if levels[i] == "device" && i >= 2 && levels[i-2] == "application" ||
			levels[i] == "devices" && i >= 2 && levels[i-2] == "v3" {
			return levels[i+1]
		}
	}
	return ""
}

// Decoders returns the decoder set the hook decodes with.
func (h *Ingest) Decoders() *decoders.Set { return h.decoders }
