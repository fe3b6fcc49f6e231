package hooks

import (
	"context"
	"encoding/hex"
	"errors"
	"hash/fnv"
	"strconv"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/decoders"
)

// Publisher stores one message durably. With wait, it returns only once the message is
// stored; without, it may return before (and must then bound what it holds). A full buffer
// is reported as sluice.ErrBufferFull.
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, data []byte, wait bool) error
}

// Ingest is the hook that turns each routed PUBLISH into an uplink in the buffer. For QoS 1
// and 2 it returns only after the buffer has stored the uplink (or its failure), so that the
// broker's PUBACK means "on disk". NewIngest builds it whole from its parts and it does not
// change after; it is safe for concurrent use by all client goroutines.
type Ingest struct {
	mqtt.HookBase
	router   *Router
	decoders *decoders.Set
	pub      Publisher
	log      zerolog.Logger
	warn     zerolog.Logger // sampled, for per-message warnings
	m        *ingestMetrics
	lora     loraStage // LoRaWAN envelopes: registry and de-duplication (lorawan.go)
	limiter  *Limiter  // flood limits, nil when none (limit.go)
	filter   *Filter   // store-on-change, nil when off (filter.go)
}

// IngestParts are everything the ingest hook is built from. Router, Decoders and Publisher
// are required; the others are optional stages, off when nil.
type IngestParts struct {
	Router    *Router
	Decoders  *decoders.Set
	Publisher Publisher
	// Limiter applies flood limits to every publish from a client of the embedded broker,
	// right after routing and before anything is decoded (limit.go).
	Limiter *Limiter
	// Filter applies store-on-change to every decoded uplink before it is stored (filter.go).
	Filter *Filter
	// Registry and Dedup serve the chirpstack and ttn routes: the device registry and the
	// de-duplication window (lorawan.go).
	Registry Devices
	Dedup    *Dedup
	Log      zerolog.Logger
	Metrics  prometheus.Registerer
}

// NewIngest builds the ingest hook from its parts. Every route's decoder must exist in
// p.Decoders. The hook does not change once built.
func NewIngest(p IngestParts) (*Ingest, error) {
	if p.Router == nil || p.Decoders == nil || p.Publisher == nil {
		return nil, errors.New("ingest: router, decoders and publisher are required")
	}
	var errs []error
	for i, r := range p.Router.routes {
		if r.cfg.Decoder == "" && r.cfg.Format.Envelope() {
			continue // the network server's decoded object, or the registry's decoder
		}
		if err := p.Decoders.Check(r.cfg.Decoder); err != nil {
			errs = append(errs, errors.New("routes["+strconv.Itoa(i)+"].decoder: "+err.Error()))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	log := p.Log.With().Str("component", "ingest").Logger()
	return &Ingest{
		router:   p.Router,
		decoders: p.Decoders,
		pub:      p.Publisher,
		log:      log,
		warn:     log.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Second}),
		m:        newIngestMetrics(p.Metrics),
		lora:     loraStage{registry: p.Registry, dedup: p.Dedup, m: newLoraMetrics(p.Metrics)},
		limiter:  p.Limiter,
		filter:   p.Filter,
	}, nil
}

// ID implements mqtt.Hook.
func (h *Ingest) ID() string { return "sluice-ingest" }

// Provides implements mqtt.Hook.
func (h *Ingest) Provides(b byte) bool { return b == mqtt.OnPublish }

// OnPublish implements mqtt.Hook: route, decode, store; refuse the message when it could not
// be stored, so that the client keeps it.
func (h *Ingest) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	m, routed := h.router.Match(pk.TopicName) // once: the limits and the pipeline share it
	if routed {
		if err := h.checkLimits(cl, pk, m); err != nil {
			return pk, err
		}
	}
	msg := Message{Client: cl.ID, Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos, PacketID: pk.PacketID}
	if err := h.handle(context.Background(), &msg, m, routed); err != nil {
		return pk, h.refuse(cl, &msg, err)
	}
	return pk, nil
}

// Message is one MQTT publish given to ingest, by the embedded broker (OnPublish) or by a
// subscription to another broker (Subscriber).
type Message struct {
	Client   string // the publishing client, or the subscription's name
	Topic    string
	Payload  []byte
	QoS      byte
	PacketID uint16
}

// Handle is the ingest pipeline of one message: route, unwrap, decode, store. It returns nil
// when the sender may be acknowledged: the message was stored, or deliberately not stored
// (unrouted, a duplicate, an ignored event, a rejected device, QoS 0 dropped), each counted. An
// error means a QoS 1/2 message was not stored: the sender must keep it and resend.
// Safe for concurrent use.
func (h *Ingest) Handle(ctx context.Context, msg *Message) error {
	m, ok := h.router.Match(msg.Topic)
	return h.handle(ctx, msg, m, ok)
}

// handle is Handle with the topic already routed (ok false: no route matched).
func (h *Ingest) handle(ctx context.Context, msg *Message, m Match, ok bool) error {
	if !ok {
		h.m.messages.WithLabelValues("unrouted").Inc()
		return nil
	}
	if m.Route.Format.Envelope() {
		return h.handleEnvelope(ctx, msg, m) // lorawan.go
	}
	start := time.Now()
	recv := start.UTC()
	id, msgID := uplinkID(msg)
	dec, _ := h.decoders.Lookup(m.Route.Decoder)
	out, err := dec.Decode(ctx, &decoders.Input{
		Bytes: msg.Payload, RecvTime: recv, Tenant: m.Tenant, Device: m.Device,
	})
	h.m.decodeSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		return h.deliver(ctx, msg, msgID, nil, &sluice.Failure{
			ID: id, Tenant: m.Tenant, Device: m.Device, Topic: msg.Topic, ReceivedAt: recv,
			Decoder: dec.Name(), Reason: "decode", Error: err.Error(), Payload: msg.Payload,
		})
	}
	return h.deliver(ctx, msg, msgID, &sluice.Uplink{
		ID: id, Tenant: m.Tenant, Device: m.Device, Topic: msg.Topic, ReceivedAt: recv,
		Decoder: dec.Name(), Data: out.Data, Readings: out.Readings, Warnings: out.Warnings,
	}, nil)
}

// deliver stores one decoded uplink u, or the failure f when u is nil, under the JetStream
// message id msgID. Every message that reaches the buffer passes here. It returns an error only
// when a QoS 1/2 message was not stored.
func (h *Ingest) deliver(ctx context.Context, msg *Message, msgID string, u *sluice.Uplink, f *sluice.Failure) error {
	wait := msg.QoS > 0
	var subject, tenant, device string
	var data []byte
	var err error
	if u == nil {
		tenant, device = f.Tenant, f.Device
		h.m.messages.WithLabelValues("failed").Inc()
		h.warn.Warn().Str("reason", f.Reason).Str("error", f.Error).Str("tenant", tenant).Str("device", device).Str("topic", msg.Topic).Msg("not decoded; stored on the error subject")
		subject = sluice.ErrorSubject(tenant, device)
		data, err = sluice.EncodeFailure(f)
	} else {
		tenant, device = u.Tenant, u.Device
		h.m.messages.WithLabelValues("decoded").Inc()
		h.m.readings.Add(float64(len(u.Readings)))
		if h.filter != nil {
			h.filter.Apply(u) // suppressed readings move to u.Suppressed
		}
		subject = sluice.UplinkSubject(tenant, device)
		data, err = sluice.EncodeUplink(u)
	}
	if err == nil {
		err = h.pub.Publish(ctx, subject, msgID, data, wait)
	}
	if err == nil && u != nil && h.filter != nil {
		h.filter.Commit(u) // only what was stored becomes the last kept value
	}
	if err == nil {
		return nil
	}
	if !wait {
		h.m.dropped.WithLabelValues(dropReason(err)).Inc()
		h.warn.Warn().Err(err).Str("tenant", tenant).Str("device", device).Msg("qos 0 message dropped")
		return nil
	}
	return err
}

// refuse turns a failed store into the broker's answer (see refusal): MQTT 5 gets reason 0x97
// quota exceeded when the buffer is full, 0x80 otherwise; MQTT 3.1.1 gets no acknowledgement,
// so the client keeps the message and resends it. A store that was not acknowledged in time
// (context.DeadlineExceeded) may still have happened: no client gets an answer then, so that it
// resends under the same packet id, which the buffer's duplicate window stores once (a failure
// code would make an MQTT 5 client publish it anew, under an id de-duplication cannot match).
func (h *Ingest) refuse(cl *mqtt.Client, msg *Message, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		h.m.refused.WithLabelValues("timeout").Inc()
		h.warn.Warn().Err(err).Str("client", cl.ID).Str("topic", msg.Topic).Msg("publish not acknowledged in time (it may be stored): no PUBACK, the client resends")
		return packets.ErrRejectPacket
	}
	reason, code := "error", packets.ErrUnspecifiedError
	if errors.Is(err, sluice.ErrBufferFull) {
		reason, code = "full", packets.ErrQuotaExceeded
	}
	h.m.refused.WithLabelValues(reason).Inc()
	h.warn.Warn().Err(err).Str("client", cl.ID).Str("topic", msg.Topic).Msg("publish refused: not stored")
	return refusal(cl, msg.QoS, msg.PacketID, code)
}

func dropReason(err error) string {
	if errors.Is(err, sluice.ErrBufferFull) {
		return "full"
	}
	return "error"
}

// uplinkID returns the uplink's id and the JetStream message id used to de-duplicate it. For
// QoS 1 and 2 the message id is a hash of what a resend repeats (client id, packet id, topic,
// payload), so a message resent after a lost PUBACK is stored once within the buffer's
// duplicate window. QoS 0 is never resent and gets no message id.
func uplinkID(msg *Message) (id, msgID string) {
	if msg.QoS == 0 {
		return nuid.Next(), ""
	}
	h := fnv.New128a()
	h.Write([]byte(msg.Client))
	h.Write([]byte{0, byte(msg.PacketID >> 8), byte(msg.PacketID), 0})
	h.Write([]byte(msg.Topic))
	h.Write([]byte{0})
	h.Write(msg.Payload)
	var sum [16]byte
	id = hex.EncodeToString(h.Sum(sum[:0]))
	return id, id
}
