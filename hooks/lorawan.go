package hooks

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/decoders"
	"github.com/sluice-iot/sluice/registry"
)

// Devices finds the registry entry of a device by any of its keys, nil when it is not listed
// (*registry.Registry). It is safe for concurrent use.
type Devices interface {
	Lookup(keys ...string) *registry.Device
}

// loraStage is what ingest needs for LoRaWAN envelopes besides decoders: the device registry
// and the de-duplication window, both optional.
type loraStage struct {
	registry Devices
	dedup    *Dedup
	m        *loraMetrics
}

// inbound is one network-server event on its way through handleEnvelope.
type inbound struct {
	msg            *Message
	route          *RouteConfig
	env            *decoders.Envelope
	entry          *registry.Device // nil for a device the registry does not list
	tenant, device string
	id, msgID      string
	recv           time.Time
}

// handleEnvelope is Handle for a chirpstack or ttn route: unwrap, identify, de-duplicate,
// apply the unknown-device policy, decode (the device's decoder, the route's, or the network
// server's object), store.
func (h *Ingest) handleEnvelope(ctx context.Context, msg *Message, m Match) error {
	start := time.Now()
	in := &inbound{msg: msg, route: m.Route, recv: start.UTC()}
	format := string(m.Route.Format)
	env, err := decoders.Unwrap(m.Route.Format, msg.Topic, msg.Payload)
	if err != nil {
		h.lora.m.events.WithLabelValues(format, "invalid").Inc()
		in.id, in.msgID = uplinkID(msg)
		in.tenant, in.device = orUnknown(m.Tenant), firstOf(m.Device, topicDevice(msg.Topic), "unknown")
		return h.fail(ctx, in, "", "envelope", err.Error())
	}
	h.lora.m.events.WithLabelValues(format, env.Kind).Inc()
	in.env = env
	in.device = deviceID(env, m.Route.LoRaWAN.DeviceID, m.Device)
	switch env.Kind {
	case decoders.KindUp, decoders.KindStatus, decoders.KindLocation:
	case decoders.KindJoin:
		if h.lora.dedup != nil {
			h.lora.dedup.Reset(in.device) // a (re)joined device counts its frames from 0 again
		}
		return nil
	default:
		return nil
	}
	if h.lora.registry != nil {
		in.entry = h.lora.registry.Lookup(in.device, env.DevEUI, env.DeviceName, env.DeviceID)
	}
	in.tenant = firstOf(entryTenant(in.entry), m.Tenant, env.Tenant, "default")
	in.id, in.msgID = uplinkID(msg)
	if env.ID != "" { // the network server's id: a redelivered or re-sent event is stored once
		in.id = env.ID + "/" + env.Kind
		in.msgID = in.id
	}

	var claim *dedupClaim
	if env.Kind == decoders.KindUp && h.lora.dedup != nil {
		var dup bool
		if claim, dup = h.lora.dedup.Claim(in.device, *env.FCnt, *env.FPort, env.Payload); dup {
			return nil
		}
	}
	err = h.envelopeUplink(ctx, in)
	if err != nil && claim != nil {
		claim.Release() // not stored: the resend must not be taken for a duplicate
	}
	h.m.decodeSeconds.Observe(time.Since(start).Seconds())
	return err
}

// fail stores the raw event on the error subject with a reason.
func (h *Ingest) fail(ctx context.Context, in *inbound, decoder, reason, text string) error {
	return h.deliver(ctx, in.msg, in.msgID, nil, &sluice.Failure{
		ID: in.id, Tenant: in.tenant, Device: in.device, Topic: in.msg.Topic, ReceivedAt: in.recv,
		Decoder: decoder, Reason: reason, Error: text, Payload: in.msg.Payload,
	})
}

// envelopeUplink turns an identified uplink, status or location event into readings and
// stores them, or stores the event on the error subject.
func (h *Ingest) envelopeUplink(ctx context.Context, in *inbound) error {
	rc, env := in.route, in.env
	if in.entry == nil {
		policy := firstOf(rc.LoRaWAN.UnknownDevices, PolicyAccept)
		h.lora.m.unknown.WithLabelValues(policy).Inc()
		switch policy {
		case PolicyPark:
			return h.fail(ctx, in, "", "parked", "device "+in.device+" is not in the registry")
		case PolicyReject:
			return h.fail(ctx, in, "", "rejected", "device "+in.device+" is not in the registry")
		}
	}
	at := in.recv
	if !env.Time.IsZero() {
		at = env.Time
	}
	u := &sluice.Uplink{
		ID: in.id, Tenant: in.tenant, Device: in.device, Topic: in.msg.Topic, ReceivedAt: in.recv,
		FPort: env.FPort, FCnt: env.FCnt, Tags: env.Tags,
	}
	decoder := rc.Decoder
	var vars map[string]string
	if e := in.entry; e != nil {
		u.Class, vars = e.Class, e.Variables
		if e.Decoder != "" {
			decoder = e.Decoder
		}
		if len(e.Tags) > 0 {
			u.Tags = make(map[string]string, len(env.Tags)+len(e.Tags))
			maps.Copy(u.Tags, env.Tags)
			maps.Copy(u.Tags, e.Tags)
		}
	}
	switch {
	case env.Kind == decoders.KindStatus:
		u.Decoder, u.Readings = string(rc.Format)+":status", env.StatusReadings(at)
		return h.deliver(ctx, in.msg, in.msgID, u, nil)
	case env.Kind == decoders.KindLocation:
		u.Decoder, u.Readings = string(rc.Format)+":location", env.LocationReadings(at)
		return h.deliver(ctx, in.msg, in.msgID, u, nil)
	case decoder == "" || rc.LoRaWAN.Prefer == "network" && env.Object != nil:
		var ok bool
		u.Decoder = "network:" + string(rc.Format)
		if u.Data, u.Readings, ok = env.ObjectReadings(at); !ok {
			return h.fail(ctx, in, "", "no_decoder", "device "+in.device+" has no decoder and the network server sent no decoded object")
		}
	default:
		dec, found := h.decoders.Lookup(decoder)
		if !found {
			return h.fail(ctx, in, decoder, "decode", fmt.Sprintf("decoder %q of device %s is not loaded", decoder, in.device))
		}
		out, err := dec.Decode(ctx, &decoders.Input{
			Bytes: env.Payload, FPort: *env.FPort, RecvTime: at, Variables: vars, Tenant: in.tenant, Device: in.device,
		})
		if err != nil {
			h.lora.m.decodeFailed.Inc()
			return h.fail(ctx, in, dec.Name(), "decode", err.Error())
		}
		u.Decoder, u.Data, u.Readings, u.Warnings = dec.Name(), out.Data, out.Readings, out.Warnings
	}
	if rc.LoRaWAN.RadioReadings {
		u.Readings = append(u.Readings, env.RadioReadings(at)...)
	}
	return h.deliver(ctx, in.msg, in.msgID, u, nil)
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

func entryTenant(d *registry.Device) string {
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
