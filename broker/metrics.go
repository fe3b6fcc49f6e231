package broker

import (
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	logins       *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	aclDenied    *prometheus.CounterVec
	dropped      *prometheus.CounterVec
	disconnects  *prometheus.CounterVec
	connRefused  prometheus.Counter
	stateFailed  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, info *mqtt.Server) *metrics {
	m := &metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_broker_logins_total",
			Help: "MQTT clients admitted, by method (password, certificate, anonymous).",
		}, []string{"method"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_broker_auth_failures_total",
			Help: "MQTT connections refused at login, by reason (unknown_user, bad_password, no_credentials, no_password, certificate_mismatch, will_not_authorized, client_id_taken, throttled: too many failed logins from the address or for the user, see auth.failed_logins).",
		}, []string{"reason"}),
		aclDenied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_broker_acl_denied_total",
			Help: "Publishes and subscriptions refused by the ACL, by action (publish, subscribe).",
		}, []string{"action"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_broker_outbound_dropped_total",
			Help: droppedHelp,
		}, []string{"reason"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_broker_disconnects_total",
			Help: "MQTT client disconnections after login, by reason (client, packet_too_large, keep_alive, not_authorized, taken_over, error).",
		}, []string{"reason"}),
	}
	m.connRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sluice_broker_connections_refused_total",
		Help: "Connections closed at accept because max_clients + 10 % connections were open (connected or handshaking).",
	})
	m.stateFailed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sluice_broker_state_write_failures_total",
		Help: "Changes of MQTT state (sessions, subscriptions, queued and retained messages) that could not be stored, and live in memory only until the next restart.",
	})
	clients := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_broker_clients",
		Help: "MQTT clients connected now.",
	}, func() float64 { return float64(atomic.LoadInt64(&info.Info.ClientsConnected)) })
	inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_broker_inflight_messages",
		Help: "QoS 1/2 messages to subscribers awaiting acknowledgement, all clients together.",
	}, func() float64 { return float64(atomic.LoadInt64(&info.Info.Inflight)) })
	// Every series an alert rule may watch exists from the start, at 0.
	for vec, values := range map[*prometheus.CounterVec][]string{
		m.logins:       {"password", "certificate", "anonymous"},
		m.authFailures: {"unknown_user", "bad_password", "no_credentials", "no_password", "certificate_mismatch", "will_not_authorized", "client_id_taken", "throttled"},
		m.aclDenied:    {"publish", "subscribe"},
		m.dropped:      {"pending_writes_full", "expired", "session_ended", "refused_by_client"}, // inflight_full: see inflightFull
		m.disconnects:  {"client", "packet_too_large", "keep_alive", "not_authorized", "taken_over", "error"},
	} {
		for _, v := range values {
			vec.WithLabelValues(v)
		}
	}
	reg.MustRegister(m.logins, m.authFailures, m.aclDenied, m.connRefused, m.stateFailed, m.disconnects, clients, inflight,
		&inflightFull{vec: m.dropped, srv: info})
	return m
}

// inflightFull adds the drops mochi counts itself but reports to no hook (a subscriber
// already has max_inflight messages unacknowledged) to sluice_broker_outbound_dropped_total,
// as reason "inflight_full".
type inflightFull struct {
	vec *prometheus.CounterVec
	srv *mqtt.Server
}

func (c *inflightFull) Describe(ch chan<- *prometheus.Desc) { c.vec.Describe(ch) }

func (c *inflightFull) Collect(ch chan<- prometheus.Metric) {
	c.vec.Collect(ch)
	ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue,
		float64(atomic.LoadInt64(&c.srv.Info.InflightDropped)), "inflight_full")
}

var droppedDesc = prometheus.NewDesc("sluice_broker_outbound_dropped_total", droppedHelp, []string{"reason"}, nil)

const droppedHelp = "Messages to MQTT subscribers dropped instead of delivered, by reason (pending_writes_full, inflight_full, expired, session_ended, refused_by_client)."
