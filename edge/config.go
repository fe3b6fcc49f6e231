package edge

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/bridge"
	"github.com/sluice-iot/sluice/broker"
	"github.com/sluice-iot/sluice/decoders"
	"github.com/sluice-iot/sluice/hooks"
	"github.com/sluice-iot/sluice/registry"
	"github.com/sluice-iot/sluice/sink"
)

// Config is the whole configuration of one edge site: one YAML file.
type Config struct {
	// Role is the process's part in a fleet: "all" (one site on its own, the default), "edge"
	// (broker and buffer, linked to a hub) or "worker" (a hub sink worker, no broker); see
	// docs/fleet.md.
	Role string `yaml:"role"`
	// DataDir holds everything Sluice keeps on disk (the JetStream buffer among it).
	DataDir string    `yaml:"data_dir"`
	Log     LogConfig `yaml:"log"`
	HTTP    struct {
		// Address of the admin listener (/healthz, /readyz, /metrics); empty disables it.
		Address string `yaml:"address"`
	} `yaml:"http"`
	MQTT   broker.Config       `yaml:"mqtt"`
	NATS   sink.BufferConfig   `yaml:"nats"`
	Routes []hooks.RouteConfig `yaml:"routes"`
	// Decoders configures the JavaScript sandbox, the script and template directories and their
	// hot reload (docs/decoders.md); routes and the registry name decoders from this set.
	Decoders decoders.Config `yaml:"decoders"`
	// Registry, Dedup and Subscribe serve LoRaWAN network servers (docs/lorawan.md): the
	// device registry, the multi-gateway de-duplication window, and subscriptions to other
	// brokers feeding the same routes.
	Registry  registry.Config   `yaml:"registry"`
	Dedup     hooks.DedupConfig `yaml:"dedup"`
	Subscribe []bridge.Config   `yaml:"subscribe"`
	Sink      struct {
		Targets []sink.TargetConfig `yaml:"targets"`
	} `yaml:"sink"`
	// StoreOnChange and Limits are inline rate limiting (docs/rate-limiting.md): deadband and
	// heartbeat filtering of readings, and token-bucket flood limits per device and connection.
	StoreOnChange hooks.FilterConfig `yaml:"store_on_change"`
	Limits        hooks.LimitConfig  `yaml:"limits"`
	// ShutdownTimeout bounds a graceful stop: intake stops, in-flight publishes finish, the
	// sinks finish their batches.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// MemoryLimit is the Go runtime's soft memory limit (debug.SetMemoryLimit; default
	// DefaultMemoryLimit, memory.go); 0 sets none. The GOMEMLIMIT environment variable, when
	// set, wins over it.
	MemoryLimit sluice.ByteSize `yaml:"memory_limit"`
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `yaml:"level"`  // trace, debug, info, warn, error
	Format string `yaml:"format"` // auto (console on a terminal, else json), json, console
}

// DefaultConfig returns a complete configuration: every key has a default.
func DefaultConfig() Config {
	c := Config{
		Role:            sink.RoleAll,
		DataDir:         "data",
		Log:             LogConfig{Level: "info", Format: "auto"},
		MQTT:            broker.DefaultConfig(),
		NATS:            sink.DefaultBufferConfig(),
		Decoders:        decoders.DefaultConfig(),
		Registry:        registry.DefaultConfig(),
		Dedup:           hooks.DefaultDedupConfig(),
		ShutdownTimeout: 15 * time.Second,
		MemoryLimit:     DefaultMemoryLimit,
	}
	c.HTTP.Address = "127.0.0.1:9484"
	c.StoreOnChange = hooks.DefaultFilterConfig()
	c.Limits = hooks.DefaultLimitConfig()
	c.Sink.Targets = []sink.TargetConfig{sink.DefaultTargetConfig()}
	return c
}

// Validate reports every problem of the whole configuration at once, each with its key path.
func (c *Config) Validate() error {
	var errs []error
	var add func(prefix string, err error)
	add = func(prefix string, err error) {
		if err == nil {
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				add(prefix, e)
			}
			return
		}
		errs = append(errs, fmt.Errorf("%s%v", prefix, err))
	}
	if c.DataDir == "" {
		add("", errors.New("data_dir: required"))
	}
	c.NATS.Role = c.Role // the buffer acts on the role (sink/fleet.go)
	add("", c.validateRole())
	switch c.Log.Level {
	case "trace", "debug", "info", "warn", "error":
	default:
		add("", fmt.Errorf("log.level: %q is not one of trace, debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "auto", "json", "console":
	default:
		add("", fmt.Errorf("log.format: %q is not one of auto, json, console", c.Log.Format))
	}
	if c.MemoryLimit != 0 && c.MemoryLimit < minMemoryLimit {
		add("", fmt.Errorf("memory_limit: %s is below %s; 0 means no limit", c.MemoryLimit, sluice.ByteSize(minMemoryLimit)))
	}
	if a := c.HTTP.Address; a != "" {
		if _, port, err := net.SplitHostPort(a); err != nil {
			add("", fmt.Errorf("http.address: %q is not host:port", a))
		} else if _, err := net.LookupPort("tcp", port); err != nil {
			add("", fmt.Errorf("http.address: %q: invalid port (want 0..65535)", a))
		}
	}
	if c.ShutdownTimeout <= 0 {
		add("", errors.New("shutdown_timeout: must be positive"))
	}
	add("mqtt.", c.MQTT.Validate())
	add("nats.", c.NATS.Validate())
	add("store_on_change.", c.StoreOnChange.Validate())
	add("limits.", c.Limits.Validate())
	if len(c.Routes) == 0 && c.Role != sink.RoleWorker {
		add("", errors.New("routes: at least one route is required"))
	}
	_, err := hooks.NewRouter(c.Routes)
	add("", err)
	add("decoders.", c.Decoders.Validate())
	add("registry.", c.Registry.Validate())
	add("dedup.", c.Dedup.Validate())
	subs := map[string]bool{}
	for i, sc := range c.Subscribe {
		add(fmt.Sprintf("subscribe[%d].", i), sc.Validate())
		if subs[sc.Name] {
			add("", fmt.Errorf("subscribe[%d].name: %q is used twice", i, sc.Name))
		}
		subs[sc.Name] = true
	}
	if len(c.Sink.Targets) == 0 && c.Role != sink.RoleEdge {
		add("", errors.New("sink.targets: at least one target is required"))
	}
	names := map[string]bool{}
	for i, t := range c.sinkTargets() {
		add(fmt.Sprintf("sink.targets[%d].", i), t.Validate())
		if names[t.Name] {
			add("", fmt.Errorf("sink.targets[%d].name: %q is used twice", i, t.Name))
		}
		names[t.Name] = true
	}
	return errors.Join(errs...)
}

// ConfigError is an invalid configuration: every problem, each with its key path.
type ConfigError struct {
	File     string
	Problems []error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid config %s (%s):", e.File, plural(len(e.Problems), "problem"))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// LoadConfig reads the YAML file at path over the defaults, expands ${VAR} and ${VAR:-default}
// references, applies the SLUICE_* environment overrides, and validates the result. Every
// problem (unknown keys included) is reported at once in a *ConfigError.
func LoadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(path, raw, os.LookupEnv)
}

// ParseConfig is LoadConfig on bytes, with env looking up environment variables.
func ParseConfig(name string, raw []byte, env func(string) (string, bool)) (*Config, error) {
	cfg, problems := parseConfig(raw, env)
	if len(problems) > 0 {
		return nil, &ConfigError{File: name, Problems: problems}
	}
	return cfg, nil
}

// parseConfig decodes and validates raw and returns every problem at once: unknown keys,
// values of the wrong type (the key keeps its default) and invalid values. The configuration
// is returned even with problems, for Check to go on with; it is nil only when raw is not
// YAML at all.
func parseConfig(raw []byte, env func(string) (string, bool)) (*Config, []error) {
	cfg := DefaultConfig()
	expanded := expandEnv(raw, env)
	var doc yaml.Node
	if err := yaml.Unmarshal(expanded, &doc); err != nil {
		return nil, []error{err}
	}
	problems := unknownKeys(&doc, reflect.TypeOf(cfg), "")
	if len(doc.Content) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(expanded))
		if err := dec.Decode(&cfg); err != nil {
			problems = append(problems, typeErrors(err, &doc)...)
		}
	}
	applyEnv(&cfg, env)
	if err := cfg.Validate(); err != nil {
		problems = append(problems, err.(interface{ Unwrap() []error }).Unwrap()...)
	}
	return &cfg, problems
}

var errLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// typeErrors turns yaml's decoding errors ("line 3: cannot unmarshal …") into "key.path:
// cannot unmarshal … (line 3)".
func typeErrors(err error, doc *yaml.Node) []error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []error{err}
	}
	lines := map[int]string{}
	keyLines(doc, "", lines)
	out := make([]error, len(te.Errors))
	for i, e := range te.Errors {
		out[i] = errors.New(e)
		if m := errLine.FindStringSubmatch(e); m != nil {
			var line int
			fmt.Sscan(m[1], &line)
			if path, ok := lines[line]; ok {
				out[i] = fmt.Errorf("%s: %s (line %d)", path, m[2], line)
			}
		}
	}
	return out
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}`)

// expandEnv replaces ${VAR} and ${VAR:-default}. A bare $ is left alone (bcrypt hashes have
// them).
func expandEnv(raw []byte, env func(string) (string, bool)) []byte {
	return envRef.ReplaceAllFunc(raw, func(m []byte) []byte {
		sub := envRef.FindSubmatch(m)
		if v, ok := env(string(sub[1])); ok && v != "" {
			return []byte(v)
		}
		return sub[2]
	})
}

// applyEnv applies the environment overrides meant for automation.
func applyEnv(c *Config, env func(string) (string, bool)) {
	if v, ok := env("SLUICE_MQTT_ADDR"); ok && v != "" && len(c.MQTT.Listeners) > 0 {
		c.MQTT.Listeners[0].Address = v
	}
	if v, ok := env("SLUICE_HTTP_ADDR"); ok {
		c.HTTP.Address = v
	}
	if v, ok := env("SLUICE_DATA_DIR"); ok && v != "" {
		c.DataDir = v
	}
	if v, ok := env("SLUICE_DATABASE_URL"); ok && v != "" && len(c.Sink.Targets) > 0 {
		c.Sink.Targets[0].DatabaseURL = v
	}
	if v, ok := env("SLUICE_LOG_LEVEL"); ok && v != "" {
		c.Log.Level = v
	}
}

// plural is "1 problem", "2 problems".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
