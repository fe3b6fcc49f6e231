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
	Type    string `yaml:"type"` // tcp, tls, ws or wss
	Address string `yaml:"address"`
	// TLS is required for the tls and wss types and ignored otherwise.
	TLS TLSConfig `yaml:"tls"`
}

// Config configures the broker. The defaults are sized for small hardware.
type Config struct {
	Listeners []ListenerConfig `yaml:"listeners"`
	// AllowAnonymous lets clients connect without credentials, with full access; only
	// loopback listeners may use it.
	AllowAnonymous   bool            `yaml:"allow_anonymous"`
	Auth             AuthConfig      `yaml:"auth"`
	MaxClients       int             `yaml:"max_clients"`
	MaxPacketSize    sluice.ByteSize `yaml:"max_packet_size"`
	MaxPendingWrites int             `yaml:"max_pending_writes"`
	ReadBufferSize   sluice.ByteSize `yaml:"read_buffer_size"`
	WriteBufferSize  sluice.ByteSize `yaml:"write_buffer_size"`
	ReceiveMaximum   int             `yaml:"receive_maximum"`
	MaxInflight      int             `yaml:"max_inflight"`
	MaxSessionExpiry time.Duration   `yaml:"max_session_expiry"`
	// MaxKeepAlive caps the keep-alive a client may ask for; a client silent for 1.5× its
	// keep-alive is disconnected. Zero leaves the client's value.
	MaxKeepAlive time.Duration `yaml:"max_keep_alive"`
	// ConnectTimeout bounds how long a new connection may take to finish its TLS or
	// WebSocket handshake and send CONNECT.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// DefaultConfig listens on loopback only, with anonymous access.
func DefaultConfig() Config {
	return Config{
		Listeners:        []ListenerConfig{{ID: "tcp", Type: "tcp", Address: "127.0.0.1:1883"}},
		AllowAnonymous:   true,
		Auth:             DefaultAuthConfig(),
		MaxClients:       10000,
		MaxPacketSize:    256 << 10,
		MaxPendingWrites: 256,
		ReadBufferSize:   2048,
		WriteBufferSize:  2048,
		ReceiveMaximum:   256,
		MaxInflight:      1024,
		MaxSessionExpiry: 24 * time.Hour,
		MaxKeepAlive:     5 * time.Minute,
		ConnectTimeout:   10 * time.Second,
	}
}

// Validate reports every problem, each prefixed with its key. It reads the users file and the
// TLS files named by the configuration, so that `sluice check` finds their problems too.
func (c Config) Validate() error {
	var errs []error
	if len(c.Listeners) == 0 {
		errs = append(errs, errors.New("listeners: at least one listener is required"))
	}
	ids := map[string]bool{}
	certListener := false
	for i, l := range c.Listeners {
		key := fmt.Sprintf("listeners[%d]", i)
		id := listenerID(l, i)
		if ids[id] {
			errs = append(errs, fmt.Errorf("%s.id: %q is used twice", key, id))
		}
		ids[id] = true
		switch l.Type {
		case "tcp", "ws":
		case "tls", "wss":
			if _, err := l.TLS.build(); err != nil {
				errs = append(errs, prefixAll(key+".tls.", err)...)
			}
			if l.TLS.ClientCAFile != "" {
				certListener = true
			}
		default:
			errs = append(errs, fmt.Errorf("%s.type: %q is not one of tcp, tls, ws, wss", key, l.Type))
		}
		host, port, err := net.SplitHostPort(l.Address)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.address: %q is not host:port", key, l.Address))
			continue
		}
		if _, err := net.LookupPort("tcp", port); err != nil {
			errs = append(errs, fmt.Errorf("%s.address: %q: invalid port (want 0..65535)", key, l.Address))
		}
		if c.AllowAnonymous && !loopback(host) {
			errs = append(errs, fmt.Errorf("%s.address: %q is not loopback, but allow_anonymous is on; bind to 127.0.0.1 or turn anonymous access off", key, l.Address))
		}
	}
	if err := c.Auth.FailedLogins.Validate(); err != nil {
		errs = append(errs, prefixAll("auth.failed_logins.", err)...)
	}
	if _, err := c.Auth.load(); err != nil {
		errs = append(errs, prefixAll("auth.", err)...)
	} else if !c.AllowAnonymous && len(c.Auth.Users) == 0 && c.Auth.UsersFile == "" && !certListener {
		errs = append(errs, errors.New("auth: allow_anonymous is off but no users, users_file or listener with tls.client_ca_file is configured, so no client could connect"))
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
	if c.MaxKeepAlive < 0 || c.MaxKeepAlive > 65535*time.Second {
		errs = append(errs, fmt.Errorf("max_keep_alive: %s is outside 0..18h12m15s", c.MaxKeepAlive))
	}
	if c.ConnectTimeout <= 0 {
		errs = append(errs, errors.New("connect_timeout: must be positive"))
	}
	return errors.Join(errs...)
}

func listenerID(l ListenerConfig, i int) string {
	if l.ID != "" {
		return l.ID
	}
	return fmt.Sprintf("%s%d", l.Type, i)
}

// prefixAll splits a joined error and prefixes each problem with a key path.
func prefixAll(prefix string, err error) []error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		out = append(out, fmt.Errorf("%s%w", prefix, e))
	}
	return out
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
