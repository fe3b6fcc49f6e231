package broker

import (
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// deliverer hands a message to one subscriber the way mochi does for its own deliveries
// (ACL, Retain As Published, subscription identifiers, QoS downgrade, max_inflight, message
// expiry), for the deliveries mochi does not make: a publisher's own copy that mochi's No
// Local handling withholds (nolocal.go), and hand-offs cut short by a kill, queued at start-up
// (handoff.go). Safe for concurrent use once the broker runs.
type deliverer struct {
	srv     *mqtt.Server
	acl     func(cl *mqtt.Client, topic string, write bool) bool
	persist *persistHook // nil when the MQTT state is not kept; set before the broker starts
	m       *metrics
	now     func() time.Time
}

// subscribers returns the subscription each client receives pk by, as it stands: its
// matching subscriptions merged, one member picked per shared subscription group, and the
// publisher's own subscriptions with No Local left out (not merged into the others).
func (d *deliverer) subscribers(pk packets.Packet) map[string]packets.Subscription {
	subs := d.srv.Topics.Subscribers(pk.TopicName)
	if len(subs.Shared) > 0 {
		subs.SelectShared()
		subs.MergeSharedSelected()
	}
	out := subs.Subscriptions
	if _, ok := out[pk.Origin]; !ok {
		return out
	}
	cl, ok := d.srv.Clients.Get(pk.Origin)
	if !ok {
		return out
	}
	own, ok, _ := ownSubscription(cl, pk.TopicName)
	if shared, picked := subs.SharedSelected[pk.Origin]; picked {
		if ok {
			own = own.Merge(shared)
		} else {
			own, ok = shared, true
		}
	}
	if ok {
		out[pk.Origin] = own
	} else {
		delete(out, pk.Origin)
	}
	return out
}

// ownSubscription merges cl's subscriptions that match topic and would deliver cl's own
// message to it: those without No Local, shared ones aside (MQTT-3.8.3-3). withheld reports
// whether one that matches has No Local: mochi then gave cl none of its own message.
func ownSubscription(cl *mqtt.Client, topic string) (out packets.Subscription, found, withheld bool) {
	for filter, sub := range cl.State.Subscriptions.GetAll() {
		if mqtt.IsSharedFilter(filter) || !matchTopic(filter, topic) {
			continue
		}
		if sub.NoLocal {
			withheld = true
			continue
		}
		if !found {
			out, found = sub, true
			out.Identifiers = map[string]int{}
		}
		if sub.Identifier > 0 {
			out.Identifiers[filter] = sub.Identifier
		}
		out.Qos = max(out.Qos, sub.Qos)
		out.RetainAsPublished = out.RetainAsPublished || sub.RetainAsPublished
	}
	return out, found, withheld
}

// matchTopic reports whether filter (not shared) matches topic (MQTT 5 §4.7).
func matchTopic(filter, topic string) bool {
	if filter == "" || topic == "" {
		return false
	}
	if topic[0] == '$' && (filter[0] == '+' || filter[0] == '#') { // MQTT-4.7.1-1
		return false
	}
	f, t := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, p := range f {
		if p == "#" {
			return true // also the parent level: "a/#" matches "a"
		}
		if i >= len(t) || (p != "+" && p != t[i]) {
			return false
		}
	}
	return len(f) == len(t)
}

// errExpired: the message's expiry passed before it could be delivered.
var errExpired = errors.New("message expired")

// deliver hands pk to cl by sub: written at once when cl is connected, and for QoS 1/2 kept
// in flight (and stored with a persistent session) until acknowledged, also when cl is
// offline. A message refused by the ACL, expired, or beyond max_inflight is not delivered;
// the last two are counted as drops, as mochi's own are.
func (d *deliverer) deliver(cl *mqtt.Client, sub packets.Subscription, pk packets.Packet) error {
	if !d.acl(cl, pk.TopicName, false) {
		return packets.ErrNotAuthorized
	}
	out := pk.Copy(false)
	if cl.Properties.ProtocolVersion < 5 || !sub.RetainAsPublished {
		out.FixedHeader.Retain = false // MQTT-3.3.1-12
	}
	out.Properties.SubscriptionIdentifier = nil
	for _, id := range sub.Identifiers {
		if id > 0 {
			out.Properties.SubscriptionIdentifier = append(out.Properties.SubscriptionIdentifier, id)
		}
	}
	slices.Sort(out.Properties.SubscriptionIdentifier)
	out.FixedHeader.Qos = min(out.FixedHeader.Qos, sub.Qos, d.srv.Options.Capabilities.MaximumQos)
	if out.Expiry > 0 && d.now().Unix() >= out.Expiry {
		d.m.dropped.WithLabelValues("expired").Inc()
		return errExpired
	}
	connected := cl.Net.Conn != nil && !cl.Closed()
	if out.FixedHeader.Qos == 0 {
		if !connected {
			return nil // as mochi: QoS 0 is not queued
		}
		return cl.WritePacket(out)
	}
	if cl.State.Inflight.Len() >= int(d.srv.Options.Capabilities.MaximumInflight) {
		atomic.AddInt64(&d.srv.Info.InflightDropped, 1) // counted by the drops hook's collector
		return packets.ErrQuotaExceeded
	}
	id, err := cl.NextPacketID()
	if err != nil {
		atomic.AddInt64(&d.srv.Info.InflightDropped, 1)
		return packets.ErrQuotaExceeded
	}
	out.PacketID = uint16(id)
	if cl.State.Inflight.Set(out) {
		atomic.AddInt64(&d.srv.Info.Inflight, 1)
		if d.persist != nil {
			d.persist.OnQosPublish(cl, out, out.Created, 0)
		}
		cl.State.Inflight.DecreaseSendQuota()
	}
	if !connected {
		return nil
	}
	return cl.WritePacket(out)
}
