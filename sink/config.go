package sink

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"gopkg.in/yaml.v3"

	"github.com/sluice-iot/sluice"
)

// BufferConfig configures the JetStream buffer.
type BufferConfig struct {
	// URL of an external NATS server or cluster; empty starts an embedded server.
	URL string `yaml:"url"`
	// Listen opens a client port on the embedded server (e.g. "127.0.0.1:4222") for backends;
	// empty opens none.
	Listen string `yaml:"listen"`
	// StoreDir holds the embedded server's JetStream files; empty means <data_dir>/jetstream.
	StoreDir string `yaml:"store_dir"`
	// Stream is the name of the stream holding uplinks, failures and dead letters.
	Stream string `yaml:"stream"`
	// MaxBytes is the disk budget of the stream; when it is used up new publishes are refused.
	MaxBytes sluice.ByteSize `yaml:"max_bytes"`
	// MaxAge is how long messages are retained (0 = until the budget is used).
	MaxAge time.Duration `yaml:"max_age"`
	// DuplicateWindow is how long JetStream remembers message ids to drop resent uplinks. Its
	// memory grows with it: about 110 bytes per QoS 1/2 message received within the window
	// (docs/operations.md): about 16 MB at 5,000 messages/s for 30 s.
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	// Fsync makes the embedded server sync every write to disk before acknowledging it.
	Fsync bool `yaml:"fsync"`
	// PublishTimeout bounds how long a QoS 1/2 publish waits for the JetStream acknowledgement.
	PublishTimeout time.Duration `yaml:"publish_timeout"`
	// MaxAsyncPending bounds the QoS 0 publishes awaiting acknowledgement.
	MaxAsyncPending int `yaml:"max_async_pending"`
	// WhenFull is the budget policy: "refuse" (new publishes are refused, nothing accepted is
	// evicted) or "drop_oldest" (the oldest messages are evicted, counted, to take new ones).
	WhenFull string `yaml:"when_full"`
	// DLQMaxBytes is the budget of the dead-letter stream (<stream>_DLQ), apart from MaxBytes so
	// that a full buffer never keeps a target from recording a refused row.
	DLQMaxBytes sluice.ByteSize `yaml:"dlq_max_bytes"`
	// MQTTStateMaxBytes is the budget of the MQTT state (<stream>_MQTT: persistent sessions,
	// their subscriptions and queued messages, retained messages), kept across restarts apart
	// from the readings. 0 keeps no MQTT state: it is lost on restart.
	MQTTStateMaxBytes sluice.ByteSize `yaml:"mqtt_state_max_bytes"`

	// Role is the process's role in a fleet (RoleAll, RoleEdge, RoleWorker), set from the
	// top-level role key (fleet.go, docs/fleet.md).
	Role string `yaml:"-"`
	// Site names an edge site: the JetStream domain of its embedded server, the prefix of its
	// message ids and the name the hub sources its stream by (role edge).
	Site string `yaml:"site"`
	// Hub is the leafnode link of an edge to the hub cluster (role edge).
	Hub HubConfig `yaml:"hub"`
	// Sources are the sites whose streams the hub stream sources (role worker); a worker adds
	// them and never removes one.
	Sources []string `yaml:"sources"`
	// Replicas of the hub stream in the hub cluster (role worker).
	Replicas int `yaml:"replicas"`
}

// DefaultBufferConfig returns the embedded-server defaults.
func DefaultBufferConfig() BufferConfig {
	return BufferConfig{
		Stream:          "SLUICE",
		MaxBytes:        1 << 30,
		MaxAge:          7 * 24 * time.Hour,
		DuplicateWindow: 30 * time.Second,
		PublishTimeout:  5 * time.Second,
		MaxAsyncPending: 4096,
		WhenFull:        WhenFullRefuse,
		DLQMaxBytes:     64 << 20,

		MQTTStateMaxBytes: 64 << 20,

		Role:     RoleAll,
		Replicas: 1,
	}
}

var streamName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Validate reports every problem, each prefixed with its key.
func (c BufferConfig) Validate() error {
	var errs []error
	if !streamName.MatchString(c.Stream) {
		errs = append(errs, fmt.Errorf("stream: %q is not a valid stream name (letters, digits, - and _)", c.Stream))
	}
	if c.MaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("max_bytes: %s is below the minimum of 1MiB", c.MaxBytes))
	}
	if c.MaxAge < 0 {
		errs = append(errs, errors.New("max_age: must not be negative"))
	}
	if c.DuplicateWindow <= 0 {
		errs = append(errs, errors.New("duplicate_window: must be positive"))
	}
	if c.DuplicateWindow > 0 && c.PublishTimeout > 0 && c.DuplicateWindow < 2*c.PublishTimeout {
		errs = append(errs, fmt.Errorf("duplicate_window: %s is shorter than twice publish_timeout (%s): a publish retried after a timeout could be stored twice", c.DuplicateWindow, c.PublishTimeout))
	}
	if c.MaxAge > 0 && c.DuplicateWindow > c.MaxAge {
		errs = append(errs, errors.New("duplicate_window: must not exceed max_age"))
	}
	if c.PublishTimeout <= 0 {
		errs = append(errs, errors.New("publish_timeout: must be positive"))
	}
	if c.MaxAsyncPending < 1 {
		errs = append(errs, errors.New("max_async_pending: must be at least 1"))
	}
	if len(c.Stream) > 60 {
		errs = append(errs, fmt.Errorf("stream: %q is longer than 60 characters (the dead-letter stream adds _DLQ)", c.Stream))
	}
	if c.MQTTStateMaxBytes != 0 && c.MQTTStateMaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("mqtt_state_max_bytes: %s is below the minimum of 1MiB (0 keeps no MQTT state)", c.MQTTStateMaxBytes))
	}
	if c.DLQMaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("dlq_max_bytes: %s is below the minimum of 1MiB", c.DLQMaxBytes))
	}
	if c.WhenFull != WhenFullRefuse && c.WhenFull != WhenFullDropOldest {
		errs = append(errs, fmt.Errorf("when_full: %q is not one of %s, %s", c.WhenFull, WhenFullRefuse, WhenFullDropOldest))
	}
	errs = append(errs, c.validateFleet()...)
	if c.URL != "" && c.Listen != "" {
		errs = append(errs, errors.New("listen: only the embedded server listens; remove it or url"))
	}
	if c.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("listen: %q is not host:port", c.Listen))
		} else if _, err := net.LookupPort("tcp", port); err != nil {
			errs = append(errs, fmt.Errorf("listen: %q: invalid port (want 0..65535)", c.Listen))
		}
	}
	return errors.Join(errs...)
}

// TargetConfig configures one database the sink writes to.
type TargetConfig struct {
	// Name identifies the target in metrics, consumer names and dead-letter subjects.
	Name        string `yaml:"name"`
	DatabaseURL string `yaml:"database_url"`
	// Schema is the PostgreSQL schema holding Sluice's tables and views.
	Schema string `yaml:"schema"`
	// BatchRows is the most readings written in one transaction.
	BatchRows int `yaml:"batch_rows"`
	// BatchWait is the longest a reading waits for its batch to fill.
	BatchWait time.Duration `yaml:"batch_wait"`
	// RetryMin and RetryMax bound the exponential backoff after a database error.
	RetryMin time.Duration `yaml:"retry_min"`
	RetryMax time.Duration `yaml:"retry_max"`
	// AckWait is how long a batch delivered to a process may stay unacknowledged before it is
	// delivered again, to this process or another sharing the target (role worker).
	AckWait time.Duration `yaml:"ack_wait"`
	// Migrate applies the schema migrations at start-up.
	Migrate bool `yaml:"migrate"`
	// MaxConns bounds the connection pool.
	MaxConns int32 `yaml:"max_conns"`
	// Start is where a target new to this buffer begins: "all" (all retained history), "new"
	// (messages stored from now on) or an RFC 3339 time. A target that exists keeps its place.
	Start string `yaml:"start"`
	// Limits are the checks readings pass before they are written.
	Limits RowLimits `yaml:"limits"`
	// Storage lays out the readings: retention classes and which tenants and devices use them.
	Storage StorageConfig `yaml:"storage"`
	// Jobs watches the TimescaleDB jobs (policies) of the schema (jobs.go, jobs_watch.go).
	Jobs JobsConfig `yaml:"timescale_jobs"`
}

// DefaultTargetConfig returns the defaults of a target.
func DefaultTargetConfig() TargetConfig {
	return TargetConfig{
		Name:      "main",
		Schema:    "public",
		BatchRows: 5000,
		BatchWait: 100 * time.Millisecond,
		RetryMin:  100 * time.Millisecond,
		RetryMax:  2 * time.Second,
		AckWait:   30 * time.Second,
		Migrate:   true,
		MaxConns:  4,
		Start:     StartAll,
		Limits:    DefaultRowLimits(),
		Storage:   DefaultStorageConfig(),
		Jobs:      DefaultJobsConfig(),
	}
}

var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate reports every problem, each prefixed with its key.
func (c TargetConfig) Validate() error {
	var errs []error
	if !identifier.MatchString(c.Name) {
		errs = append(errs, fmt.Errorf("name: %q must be a lower-case identifier", c.Name))
	}
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("database_url: required (or set SLUICE_DATABASE_URL)"))
	} else if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
		errs = append(errs, fmt.Errorf("database_url: %v", err)) // pgx masks the password
	}
	if !identifier.MatchString(c.Schema) {
		errs = append(errs, fmt.Errorf("schema: %q must be a lower-case identifier", c.Schema))
	}
	if c.BatchRows < 1 || c.BatchRows > 1_000_000 {
		errs = append(errs, fmt.Errorf("batch_rows: %d is outside 1..1000000", c.BatchRows))
	}
	if c.BatchWait <= 0 {
		errs = append(errs, errors.New("batch_wait: must be positive"))
	}
	if c.RetryMin <= 0 || c.RetryMax < c.RetryMin {
		errs = append(errs, errors.New("retry_min, retry_max: want 0 < retry_min <= retry_max"))
	}
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("ack_wait: %s is below the minimum of 1s", c.AckWait))
	}
	if c.MaxConns < 1 {
		errs = append(errs, errors.New("max_conns: must be at least 1"))
	}
	if _, _, err := parseStart(c.Start); err != nil {
		errs = append(errs, fmt.Errorf("start: %w", err))
	}
	if err := c.Limits.Validate(); err != nil {
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			errs = append(errs, fmt.Errorf("limits.%w", e))
		}
	}
	if err := c.Storage.Validate(); err != nil {
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			errs = append(errs, fmt.Errorf("storage.%w", e))
		}
	}
	if err := c.Jobs.Validate(); err != nil {
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			errs = append(errs, fmt.Errorf("timescale_jobs.%w", e))
		}
	}
	return errors.Join(errs...)
}

// UnmarshalYAML starts every target from DefaultTargetConfig, so a list entry need only name
// what differs.
func (c *TargetConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain TargetConfig
	p := plain(DefaultTargetConfig())
	if err := n.Decode(&p); err != nil {
		return err
	}
	*c = TargetConfig(p)
	return nil
}
