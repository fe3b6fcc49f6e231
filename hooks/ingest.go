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
// broker's PUBACK means "on disk". It is safe for concurrent use by all client goroutines.
type Ingest struct {
	mqtt.HookBase
	router   *Router
	decoders *decoders.Set
	pub      Publisher
	log      zerolog.Logger
	warn     zerolog.Logger // sampled, for per-message warnings
	m        *ingestMetrics
}

// NewIngest builds the ingest hook. Every route's decoder must exist in decs.
func NewIngest(router *Router, decs *decoders.Set, pub Publisher, log zerolog.Logger, reg prometheus.Registerer) (*Ingest, error) {
	var errs []error
	for i, r := range router.routes {
		if err := decs.Check(r.cfg.Decoder); err != nil {
			errs = append(errs, errors.New("routes["+strconv.Itoa(i)+"].decoder: "+err.Error()))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	log = log.With().Str("component", "ingest").Logger()
	return &Ingest{
		router:   router,
		decoders: decs,
		pub:      pub,
		log:      log,
		warn:     log.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Second}),
		m:        newIngestMetrics(reg),
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
	m, ok := h.router.Match(pk.TopicName)
	if !ok {
		h.m.messages.WithLabelValues("unrouted").Inc()
		return pk, nil
	}
	start := time.Now()
	recv := start.UTC()
	wait := pk.FixedHeader.Qos > 0
	id, msgID := uplinkID(cl.ID, pk)
	dec, _ := h.decoders.Lookup(m.Route.Decoder)
	out, err := dec.Decode(context.Background(), &decoders.Input{
		Bytes: pk.Payload, RecvTime: recv, Tenant: m.Tenant, Device: m.Device,
	})
	h.m.decodeSeconds.Observe(time.Since(start).Seconds())

	var subject string
	var data []byte
	if err != nil {
		h.m.messages.WithLabelValues("failed").Inc()
		h.warn.Warn().Err(err).Str("tenant", m.Tenant).Str("device", m.Device).Str("topic", pk.TopicName).Msg("decode failed; stored on the error subject")
		subject = sluice.ErrorSubject(m.Tenant, m.Device)
		data, err = sluice.EncodeFailure(&sluice.Failure{
			ID: id, Tenant: m.Tenant, Device: m.Device, Topic: pk.TopicName, ReceivedAt: recv,
			Decoder: dec.Name(), Reason: "decode", Error: err.Error(), Payload: pk.Payload,
		})
	} else {
		h.m.messages.WithLabelValues("decoded").Inc()
		h.m.readings.Add(float64(len(out.Readings)))
		subject = sluice.UplinkSubject(m.Tenant, m.Device)
		data, err = sluice.EncodeUplink(&sluice.Uplink{
			ID: id, Tenant: m.Tenant, Device: m.Device, Topic: pk.TopicName, ReceivedAt: recv,
			Decoder: dec.Name(), Data: out.Data, Readings: out.Readings, Warnings: out.Warnings,
		})
	}
	if err == nil {
		err = h.pub.Publish(context.Background(), subject, msgID, data, wait)
	}
	if err == nil {
		return pk, nil
	}
	if !wait {
		h.m.dropped.WithLabelValues(dropReason(err)).Inc()
		h.warn.Warn().Err(err).Str("tenant", m.Tenant).Str("device", m.Device).Msg("qos 0 message dropped")
		return pk, nil
	}
	return pk, h.refuse(cl, m, err)
}

// refuse turns a failed store into the broker's answer. MQTT 5 clients get a PUBACK with a
// reason code (0x97 quota exceeded when the buffer is full, 0x80 otherwise); MQTT 3.1.1 has no
// negative PUBACK, so no PUBACK is sent and the client resends the message later.
func (h *Ingest) refuse(cl *mqtt.Client, m Match, err error) error {
	full := errors.Is(err, sluice.ErrBufferFull)
	reason := "error"
	if full {
		reason = "full"
	}
	h.m.refused.WithLabelValues(reason).Inc()
	h.warn.Warn().Err(err).Str("client", cl.ID).Str("tenant", m.Tenant).Str("device", m.Device).Msg("publish refused: not stored")
	if cl.Properties.ProtocolVersion < 5 {
		return packets.ErrRejectPacket
	}
	if full {
		return packets.ErrQuotaExceeded
	}
	return packets.ErrUnspecifiedError
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
func uplinkID(client string, pk packets.Packet) (id, msgID string) {
	if pk.FixedHeader.Qos == 0 {
		return nuid.Next(), ""
	}
	h := fnv.New128a()
	h.Write([]byte(client))
	h.Write([]byte{0, byte(pk.PacketID >> 8), byte(pk.PacketID), 0})
	h.Write([]byte(pk.TopicName))
	h.Write([]byte{0})
	h.Write(pk.Payload)
	var sum [16]byte
	id = hex.EncodeToString(h.Sum(sum[:0]))
	return id, id
}
