// Package bench is Sluice's end-to-end load test: it starts a Sluice (or targets a running
// one), publishes MQTT uplinks over real sockets with a minimal publisher, watches the rows
// appear in PostgreSQL, and reports throughput, latencies and the cost in CPU and memory.
// It must not be imported by Sluice itself: it is a client of it.
package bench

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"time"
)

// Config is one benchmark run.
type Config struct {
	// Broker is host:port of a running Sluice to load; empty starts one (see Sluice).
	Broker string
	// Admin is host:port of the running Sluice's admin listener (progress from its metrics);
	// optional with Broker, ignored otherwise.
	Admin string
	// PID of the running Sluice, to report its CPU and RSS; optional with Broker.
	PID int
	// Sluice is the binary started with `run` when Broker is empty.
	Sluice string
	// Templates is the device template directory (for the chirpstack payload).
	Templates string
	// Peer loads a peer stack instead of Sluice: "" (Sluice) or PeerTelegraf, whose binaries
	// are Telegraf and Mosquitto.
	Peer                string
	Telegraf, Mosquitto string
	// NoProbes leaves out the probe polling (end-to-end latency), which only Sluice's tables
	// allow: a comparison loads both systems' databases alike.
	NoProbes bool

	Connections int
	QoS         int
	Payload     string
	// Duration or Messages (exactly one) bounds the load.
	Duration time.Duration
	Messages int
	// Rate is the total messages per second offered; 0 publishes as fast as acknowledged.
	Rate float64
	// Inflight is the most QoS 1 publishes awaiting PUBACK per connection.
	Inflight int
	// Client is the generator's MQTT client: minimal (its own) or paho (for comparison).
	Client string
	// Outage holds the database back for this long while the load goes on; 0 for none.
	Outage time.Duration

	DatabaseURL string
	// Schema holds the tables of a running Sluice (with Broker); a started one gets a fresh
	// schema that is dropped afterwards.
	Schema string
	Fsync  bool
	// Keep leaves the started Sluice's schema in place.
	Keep bool
	// Profile is a directory where a started Sluice writes cpu.pprof, allocs.pprof and
	// heap.pprof (the heap at its peak).
	Profile string
}

// DefaultConfig is 50 connections publishing JSON at QoS 1 as fast as possible for 20 s.
func DefaultConfig() Config {
	return Config{
		Sluice:      "",
		Templates:   "configs/templates",
		Connections: 50,
		QoS:         1,
		Payload:     PayloadJSON,
		Duration:    20 * time.Second,
		Inflight:    16,
		Client:      ClientMinimal,
		Schema:      "public",
		Telegraf:    "/opt/peer/telegraf",
		Mosquitto:   "/usr/sbin/mosquitto",
	}
}

var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate reports every problem at once, each named by its flag.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Connections < 1 || c.Connections > 10000 {
		bad("--connections: %d is outside 1..10000", c.Connections)
	}
	if c.QoS != 0 && c.QoS != 1 {
		bad("--qos: %d is not 0 or 1", c.QoS)
	}
	if _, err := kindOf(c.Payload); err != nil {
		bad("--%v", err)
	}
	switch {
	case c.Duration > 0 && c.Messages > 0:
		bad("--duration, --messages: give one, not both")
	case c.Duration <= 0 && c.Messages <= 0:
		bad("--duration, --messages: give one")
	case c.Messages > 0 && c.Messages < c.Connections:
		bad("--messages: %d is fewer than --connections %d", c.Messages, c.Connections)
	}
	if c.Rate < 0 {
		bad("--rate: must not be negative")
	}
	if c.Client != ClientMinimal && c.Client != ClientPaho {
		bad("--client: %q: %v", c.Client, errUnknownClient)
	}
	if c.Inflight < 1 || c.Inflight > 65535 {
		bad("--inflight: %d is outside 1..65535", c.Inflight)
	}
	if c.Outage < 0 {
		bad("--outage: must not be negative")
	}
	if c.Outage > 0 {
		if c.Broker != "" {
			bad("--outage: needs a Sluice started by the benchmark (it puts a proxy before the database); remove --broker")
		}
		if c.Duration > 0 && c.Duration < c.Outage+5*time.Second {
			bad("--duration: %v leaves no time around a %v outage (want at least outage + 5s)", c.Duration, c.Outage)
		}
		if c.Messages > 0 {
			bad("--outage: needs --duration (the load must go on through and after the outage)")
		}
	}
	if c.DatabaseURL == "" {
		bad("--database-url: required (or set SLUICE_DATABASE_URL)")
	} else if u, err := url.Parse(c.DatabaseURL); err != nil || u.Host == "" {
		bad("--database-url: %q is not a postgres://user@host:port/db URL", c.DatabaseURL)
	}
	switch c.Peer {
	case "":
	case PeerTelegraf:
		if st, err := os.Stat(c.Telegraf); err != nil || st.IsDir() {
			bad("--telegraf: %q is not a binary", c.Telegraf)
		}
		if st, err := os.Stat(c.Mosquitto); err != nil || st.IsDir() {
			bad("--mosquitto: %q is not a binary", c.Mosquitto)
		}
		if c.Payload != PayloadJSON {
			bad("--payload: the peer reads json only, not %s", c.Payload)
		}
		if c.Broker != "" || c.Outage > 0 || c.Fsync || c.Profile != "" {
			bad("--peer: not with --broker, --outage, --fsync or --profile (they configure Sluice)")
		}
	default:
		bad("--peer: %q is not telegraf", c.Peer)
	}
	if c.Broker != "" {
		if _, _, err := net.SplitHostPort(c.Broker); err != nil {
			bad("--broker: %q is not host:port", c.Broker)
		}
		if !identifier.MatchString(c.Schema) {
			bad("--schema: %q must be a lower-case identifier", c.Schema)
		}
		if c.Fsync {
			bad("--fsync: configure fsync on the running Sluice (nats.fsync) instead")
		}
		if c.Profile != "" {
			bad("--profile: profiles only a Sluice started by the benchmark; remove --broker")
		}
	} else if c.Sluice == "" && c.Peer == "" {
		bad("--sluice: the binary to start is unknown")
	}
	return errors.Join(errs...)
}
