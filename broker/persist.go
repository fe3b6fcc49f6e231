package broker

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// StateStore keeps MQTT state across restarts: persistent sessions (clean start off), their
// subscriptions and the QoS 1/2 messages queued or in flight for them, and retained messages.
// Keys are made of [A-Za-z0-9_=.-]; values are opaque. The broker declares it; the buffer's
// JetStream key-value bucket implements it (sink.MQTTState), so that the state lives in
// data_dir with the readings, within a budget of its own.
type StateStore interface {
	Put(key string, value []byte) error
	Delete(key string) error
	// Load returns the values of every key starting with prefix.
	Load(prefix string) ([][]byte, error)
}

// Key prefixes of the state.
const (
	stateClient   = "cl."
	stateSub      = "sub."
	stateInflight = "inf."
	stateRetained = "ret."
)

// stateKey encodes parts (client ids, filters and topics may hold any character) into a key.
func stateKey(prefix string, parts ...string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(base64.RawURLEncoding.EncodeToString([]byte(p)))
		if p == "" {
			b.WriteByte('=') // a key token may not be empty
		}
	}
	return b.String()
}

// storedClient is a session as stored: mochi's record and when its connection ended, so that
// its expiry counts the time Sluice was down too.
type storedClient struct {
	storage.Client
	Disconnected int64 `json:"disconnected,omitempty"` // unix seconds; 0: connected when last written
}

// persistHook is a mochi storage hook over a StateStore. mochi reads the stored state once,
// when the broker starts (before it listens), and reports every change through the hook's
// events, on the goroutines of the clients concerned. A write that fails (the store is
// unreachable or its budget is used up) is counted and logged, sampled; the broker goes on
// with its state in memory, except for the hand-off journal (handoff.go): a publish whose
// entry cannot be written is refused.
type persistHook struct {
	mqtt.HookBase
	store     StateStore
	maxExpiry time.Duration
	now       func() time.Time
	failed    prometheus.Counter
	log       zerolog.Logger
	warn      zerolog.Logger // sampled
	known     sync.Map       // client id → true: sessions stored, so that forgetting the others costs nothing
	sessions  atomic.Int64   // entries in known
	srv       *mqtt.Server   // to find the sessions a publish is due to (handoff.go)
	pending   sync.Map       // *mqtt.Client → key of the journal entry of its publish being handed off
}

func newPersistHook(srv *mqtt.Server, store StateStore, maxExpiry time.Duration, m *metrics, log zerolog.Logger) *persistHook {
	return &persistHook{srv: srv, store: store, maxExpiry: maxExpiry, now: time.Now, failed: m.stateFailed, log: log,
		warn: log.Sample(&zerolog.BurstSampler{Burst: 10, Period: 10 * time.Second})}
}

// ID implements mqtt.Hook.
func (h *persistHook) ID() string { return "sluice-state" }

// Provides implements mqtt.Hook.
func (h *persistHook) Provides(b byte) bool {
	return bytes.IndexByte([]byte{
		mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribed, mqtt.OnUnsubscribed,
		mqtt.OnRetainMessage, mqtt.OnWillSent, mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped,
		mqtt.OnClientExpired, mqtt.OnRetainedExpired, mqtt.OnPublish, mqtt.OnPublished,
		mqtt.StoredClients, mqtt.StoredInflightMessages, mqtt.StoredRetainedMessages, mqtt.StoredSubscriptions,
	}, b) >= 0
}

func (h *persistHook) put(key string, v any) {
	data, err := json.Marshal(v)
	if err == nil {
		err = h.store.Put(key, data)
	}
	if err != nil {
		h.failed.Inc()
		h.warn.Warn().Err(err).Msg("mqtt state not stored: it is kept in memory only")
	}
}

func (h *persistHook) del(key string) {
	if err := h.store.Delete(key); err != nil {
		h.failed.Inc()
		h.warn.Warn().Err(err).Msg("mqtt state not deleted")
	}
}

// persistent reports whether cl's session outlives its connection.
func persistent(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

// OnSessionEstablished implements mqtt.Hook.
func (h *persistHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if persistent(cl) {
		h.putClient(cl, 0)
	} else {
		h.del(stateKey(stateClient, cl.ID)) // a clean start ends a stored session
	}
}

// OnWillSent implements mqtt.Hook: the will is gone from the session.
func (h *persistHook) OnWillSent(cl *mqtt.Client, _ packets.Packet) {
	if persistent(cl) {
		h.putClient(cl, h.now().Unix())
	}
}

func (h *persistHook) putClient(cl *mqtt.Client, disconnected int64) {
	h.remember(cl.ID)
	props := cl.Properties.Props.Copy(false)
	h.put(stateKey(stateClient, cl.ID), storedClient{Client: storage.Client{
		ID: cl.ID, T: storage.ClientKey, Remote: cl.Net.Remote, Listener: cl.Net.Listener,
		Username: cl.Properties.Username, Clean: cl.Properties.Clean, ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval: props.SessionExpiryInterval, SessionExpiryIntervalFlag: props.SessionExpiryIntervalFlag,
			AuthenticationMethod: props.AuthenticationMethod, AuthenticationData: props.AuthenticationData,
			RequestProblemInfo: props.RequestProblemInfo, RequestProblemInfoFlag: props.RequestProblemInfoFlag,
			RequestResponseInfo: props.RequestResponseInfo, ReceiveMaximum: props.ReceiveMaximum,
			TopicAliasMaximum: props.TopicAliasMaximum, User: props.User, MaximumPacketSize: props.MaximumPacketSize,
		},
		Will: storage.ClientWill(cl.Properties.Will),
	}, Disconnected: disconnected})
}

// OnDisconnect implements mqtt.Hook: a session that ends with its connection is forgotten;
// one that is kept records when its connection ended.
func (h *persistHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	h.dropPending(cl)
	switch {
	case cl.IsTakenOver(), errors.Is(cl.StopCause(), packets.ErrSessionTakenOver):
		// the new connection owns the session now
	case expire:
		h.forget(cl.ID) // also a session whose expiry was set to 0 on DISCONNECT
	case persistent(cl):
		h.putClient(cl, h.now().Unix())
	default:
		h.forget(cl.ID)
	}
}

// OnClientExpired implements mqtt.Hook.
func (h *persistHook) OnClientExpired(cl *mqtt.Client) { h.forget(cl.ID) }

// remember notes that id's session is stored.
func (h *persistHook) remember(id string) {
	if _, loaded := h.known.LoadOrStore(id, true); !loaded {
		h.sessions.Add(1)
	}
}

// forget deletes a session with its subscriptions and queued messages, if it was stored.
func (h *persistHook) forget(id string) {
	if _, ok := h.known.LoadAndDelete(id); !ok {
		return
	}
	h.sessions.Add(-1)
	h.del(stateKey(stateClient, id))
	for _, prefix := range []string{stateSub, stateInflight} {
		p := stateKey(prefix, id) + "."
		vals, err := h.keysOf(p)
		if err != nil {
			continue
		}
		for _, k := range vals {
			h.del(k)
		}
	}
}

// keysOf returns the keys stored under prefix, rebuilt from their values.
func (h *persistHook) keysOf(prefix string) ([]string, error) {
	vals, err := h.store.Load(prefix)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, v := range vals {
		var k struct {
			Key string `json:"key"`
		}
		if json.Unmarshal(v, &k) == nil && k.Key != "" {
			keys = append(keys, k.Key)
		}
	}
	return keys, nil
}

// storedSub and storedMsg carry their own key, so that a session's entries can be found and
// deleted by prefix.
type storedSub struct {
	storage.Subscription
	Key string `json:"key"`
}

type storedMsg struct {
	storage.Message
	Key string `json:"key"`
}

// OnSubscribed implements mqtt.Hook: only the subscriptions of persistent sessions are kept.
func (h *persistHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if !persistent(cl) {
		return
	}
	for i, f := range pk.Filters {
		if i >= len(codes) || codes[i] >= packets.ErrUnspecifiedError.Code {
			continue // refused
		}
		k := stateKey(stateSub, cl.ID) + "." + stateKey("", f.Filter)
		h.put(k, storedSub{Key: k, Subscription: storage.Subscription{
			ID: k, T: storage.SubscriptionKey, Client: cl.ID, Qos: codes[i], Filter: f.Filter,
			Identifier: f.Identifier, NoLocal: f.NoLocal, RetainHandling: f.RetainHandling, RetainAsPublished: f.RetainAsPublished,
		}})
	}
}

// OnUnsubscribed implements mqtt.Hook.
func (h *persistHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if !persistent(cl) {
		return
	}
	for _, f := range pk.Filters {
		h.del(stateKey(stateSub, cl.ID) + "." + stateKey("", f.Filter))
	}
}

func message(key string, cl *mqtt.Client, pk packets.Packet, sent int64) storedMsg {
	props := pk.Properties.Copy(false)
	return storedMsg{Key: key, Message: storage.Message{
		ID: key, Client: cl.ID, Origin: pk.Origin, FixedHeader: pk.FixedHeader, TopicName: pk.TopicName,
		Payload: pk.Payload, Sent: sent, Created: pk.Created, PacketID: pk.PacketID,
		Properties: storage.MessageProperties{
			PayloadFormat: props.PayloadFormat, PayloadFormatFlag: props.PayloadFormatFlag, MessageExpiryInterval: props.MessageExpiryInterval,
			ContentType: props.ContentType, ResponseTopic: props.ResponseTopic, CorrelationData: props.CorrelationData,
			SubscriptionIdentifier: props.SubscriptionIdentifier, User: props.User,
		},
	}}
}

// OnRetainMessage implements mqtt.Hook: r is -1 when the topic's retained message is cleared.
func (h *persistHook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	k := stateKey(stateRetained, pk.TopicName)
	if r == -1 {
		h.del(k)
		return
	}
	m := message(k, cl, pk, 0)
	m.T = storage.RetainedKey
	h.put(k, m)
}

// OnRetainedExpired implements mqtt.Hook.
func (h *persistHook) OnRetainedExpired(topic string) { h.del(stateKey(stateRetained, topic)) }

func inflightKey(cl *mqtt.Client, pk packets.Packet) string {
	return stateKey(stateInflight, cl.ID) + "." + stateKey("", pk.FormatID())
}

// OnQosPublish implements mqtt.Hook: a QoS 1/2 message to a persistent session, sent or queued.
func (h *persistHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, _ int) {
	if !persistent(cl) || pk.FixedHeader.Type != packets.Publish {
		return // the broker's own acknowledgements of a client's QoS 2 publish are not kept
	}
	if pk.TopicName == "" {
		return // sent by topic alias: the topic is not known here
	}
	k := inflightKey(cl, pk)
	m := message(k, cl, pk, sent)
	m.T = storage.InflightKey
	h.put(k, m)
}

// OnQosComplete implements mqtt.Hook.
func (h *persistHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if persistent(cl) {
		h.del(inflightKey(cl, pk))
	}
}

// OnQosDropped implements mqtt.Hook. mochi reports the messages of a session that a new
// connection resumes as dropped from the old connection: they are the new one's now, under
// the same keys, and stay stored.
func (h *persistHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if cl.IsTakenOver() {
		return
	}
	h.OnQosComplete(cl, pk)
}

// StoredClients implements mqtt.Hook: the sessions whose expiry has not passed, the time
// Sluice was down included. A session connected when Sluice stopped (it was killed) counts
// as disconnected at start-up. Expired sessions are deleted with what they held.
func (h *persistHook) StoredClients() ([]storage.Client, error) {
	vals, err := h.load(stateClient)
	if err != nil {
		return nil, err
	}
	now := h.now().Unix()
	var out []storage.Client
	for _, v := range vals {
		var c storedClient
		if err := json.Unmarshal(v, &c); err != nil || c.ID == "" {
			continue
		}
		expiry := int64(h.maxExpiry / time.Second)
		if c.ProtocolVersion == 5 && c.Properties.SessionExpiryIntervalFlag {
			expiry = min(expiry, int64(c.Properties.SessionExpiryInterval))
		}
		if c.Disconnected > 0 {
			left := c.Disconnected + expiry - now
			if left <= 0 {
				h.remember(c.ID)
				h.forget(c.ID)
				continue
			}
			// mochi counts a restored session's expiry from start-up: give an MQTT 5 session
			// what is left of it. (mochi gives MQTT 3.1.1 sessions max_session_expiry from
			// start-up, whatever is stored.)
			c.Properties.SessionExpiryInterval, c.Properties.SessionExpiryIntervalFlag = uint32(left), true
		}
		h.remember(c.ID)
		out = append(out, c.Client)
	}
	return out, nil
}

// load reads what is stored under prefix at start-up. A store that cannot be read does not
// keep the broker from starting: ingest comes first. The failure is counted and logged, and
// the broker starts without that part of its state.
func (h *persistHook) load(prefix string) ([][]byte, error) {
	vals, err := h.store.Load(prefix)
	if err != nil {
		h.failed.Inc()
		h.log.Error().Err(err).Str("state", prefix).Msg("mqtt state not restored: the broker starts without it")
		return nil, nil
	}
	return vals, nil
}

// StoredSubscriptions implements mqtt.Hook.
func (h *persistHook) StoredSubscriptions() ([]storage.Subscription, error) {
	vals, err := h.load(stateSub)
	if err != nil {
		return nil, err
	}
	out := make([]storage.Subscription, 0, len(vals))
	for _, v := range vals {
		var s storedSub
		if json.Unmarshal(v, &s) == nil && s.Client != "" {
			out = append(out, s.Subscription)
		}
	}
	return out, nil
}

// StoredInflightMessages implements mqtt.Hook.
func (h *persistHook) StoredInflightMessages() ([]storage.Message, error) {
	return h.messages(stateInflight)
}

// StoredRetainedMessages implements mqtt.Hook.
func (h *persistHook) StoredRetainedMessages() ([]storage.Message, error) {
	return h.messages(stateRetained)
}

func (h *persistHook) messages(prefix string) ([]storage.Message, error) {
	vals, err := h.load(prefix)
	if err != nil {
		return nil, err
	}
	out := make([]storage.Message, 0, len(vals))
	for _, v := range vals {
		var m storedMsg
		if json.Unmarshal(v, &m) == nil {
			out = append(out, m.Message)
		}
	}
	return out, nil
}
