package broker

import (
	"errors"
	"fmt"
	"net"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-iot/sluice"
)

// ListenerConfig is one MQTT listener.
type ListenerConfig struct {
	ID      string `yaml:"id"`
	Type    string `yaml:"type"` // tcp or ws
	Address string `yaml:"address"`
}

// Config configures the broker. The defaults are sized for small hardware.
type Config struct {
	Listeners []ListenerConfig `yaml:"listeners"`
	// AllowAnonymous lets clients connect without credentials; only loopback listeners may
	// use it.
	AllowAnonymous   bool            `yaml:"allow_anonymous"`
	MaxClients       int             `yaml:"max_clients"`
	MaxPacketSize    sluice.ByteSize `yaml:"max_packet_size"`
	MaxPendingWrites int             `yaml:"max_pending_writes"`
	ReadBufferSize   sluice.ByteSize `yaml:"read_buffer_size"`
	WriteBufferSize  sluice.ByteSize `yaml:"write_buffer_size"`
	ReceiveMaximum   int             `yaml:"receive_maximum"`
	MaxInflight      int             `yaml:"max_inflight"`
	MaxSessionExpiry time.Duration   `yaml:"max_session_expiry"`
}

// DefaultConfig listens on loopback only, with anonymous access.
func DefaultConfig() Config {
	return Config{
		Listeners:        []ListenerConfig{{ID: "tcp", Type: "tcp", Address: "127.0.0.1:1883"}},
		AllowAnonymous:   true,
		MaxClients:       10000,
		MaxPacketSize:    256 << 10,
		MaxPendingWrites: 1024,
		ReadBufferSize:   2048,
		WriteBufferSize:  2048,
		ReceiveMaximum:   256,
		MaxInflight:      1024,
		MaxSessionExpiry: 24 * time.Hour,
	}
}

// Validate reports every problem, each prefixed with its key.
func (c Config) Validate() error {
	var errs []error
	if len(c.Listeners) == 0 {
		errs = append(errs, errors.New("listeners: at least one listener is required"))
	}
	for i, l := range c.Listeners {
		key := fmt.Sprintf("listeners[%d]", i)
		if l.Type != "tcp" && l.Type != "ws" {
			errs = append(errs, fmt.Errorf("%s.type: %q is not one of tcp, ws", key, l.Type))
		}
		host, _, err := net.SplitHostPort(l.Address)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.address: %q is not host:port", key, l.Address))
			continue
		}
		if c.AllowAnonymous && !loopback(host) {
			errs = append(errs, fmt.Errorf("%s.address: %q is not loopback, but allow_anonymous is on; bind to 127.0.0.1 or turn anonymous access off", key, l.Address))
		}
	}
	if c.MaxClients < 1 {
		errs = append(errs, errors.New("max_clients: must be at least 1"))
	}
	if c.MaxPacketSize < 64 || c.MaxPacketSize > 256<<20 {
		errs = append(errs, fmt.Errorf("max_packet_size: %s is outside 64B..256MiB", c.MaxPacketSize))
	}
	if c.MaxPendingWrites < 1 {
		errs = append(errs, errors.New("max_pending_writes: must be at least 1"))
	}
	if c.ReadBufferSize < 512 || c.WriteBufferSize < 512 {
		errs = append(errs, errors.New("read_buffer_size, write_buffer_size: must be at least 512B"))
	}
	if c.ReceiveMaximum < 1 || c.ReceiveMaximum > 65535 {
		errs = append(errs, fmt.Errorf("receive_maximum: %d is outside 1..65535", c.ReceiveMaximum))
	}
	if c.MaxInflight < 1 || c.MaxInflight > 65535 {
		errs = append(errs, fmt.Errorf("max_inflight: %d is outside 1..65535", c.MaxInflight))
	}
	if c.MaxSessionExpiry < 0 {
		errs = append(errs, errors.New("max_session_expiry: must not be negative"))
	}
	return errors.Join(errs...)
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// UnmarshalYAML defaults a listener's type to tcp.
func (l *ListenerConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain ListenerConfig
	p := plain{Type: "tcp"}
	if err := n.Decode(&p); err != nil {
		return err
	}
	*l = ListenerConfig(p)
	return nil
}
