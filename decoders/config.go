package decoders

import (
	"errors"
	"fmt"
	"time"

	"github.com/sluice-iot/sluice"
)

// Config says where decoders come from and how tightly scripts are sandboxed.
type Config struct {
	// ScriptsDir holds JavaScript decoders, one per file; a file foo.js is the decoder "foo".
	// Empty means no script decoders.
	ScriptsDir string `yaml:"scripts_dir"`
	// TemplatesDir holds device templates as <vendor>/<model>/{decoder.js,template.yaml}; a
	// template is the decoder "<vendor>/<model>". Empty means no templates.
	TemplatesDir string `yaml:"templates_dir"`
	// Watch reloads scripts and templates when their files change (see Set.Run).
	Watch bool `yaml:"watch"`
	// Timeout is the budget of one script call (and of a script's top level): CPU time of the
	// thread running the script on Linux, wall-clock time elsewhere.
	Timeout time.Duration `yaml:"timeout"`
	// WallTimeout is the wall-clock ceiling of one script call, however little CPU it used: a
	// call it ends is retried once, then fails as starved. 0 means 10 × Timeout.
	WallTimeout time.Duration `yaml:"wall_timeout"`
	// MaxScriptSize refuses larger script files.
	MaxScriptSize sluice.ByteSize `yaml:"max_script_size"`
	// MaxOutputSize bounds the decoded output of one call, measured as its JSON encoding.
	MaxOutputSize sluice.ByteSize `yaml:"max_output_size"`
	// MaxCallStack is the deepest JavaScript call nesting allowed.
	MaxCallStack int `yaml:"max_call_stack"`
	// PoolSize is the most runtimes kept per script, and so the most concurrent calls of one
	// script; further callers wait for a free runtime (bounded by their context).
	PoolSize int `yaml:"pool_size"`
}

// DefaultConfig returns the defaults: the limits of The Things Stack and ChirpStack where they
// publish one (100 ms per call), no script or template directories.
func DefaultConfig() Config {
	return Config{
		Timeout:       100 * time.Millisecond,
		MaxScriptSize: 1 << 20,
		MaxOutputSize: 256 << 10,
		MaxCallStack:  1000,
		PoolSize:      4,
	}
}

// Validate reports every problem of c at once, as "key: problem" items joined with errors.Join.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Timeout <= 0 || c.Timeout > time.Minute {
		bad("timeout", "%v is out of range (want more than 0 and at most 1m)", c.Timeout)
	}
	if c.WallTimeout != 0 && (c.WallTimeout < c.Timeout || c.WallTimeout > 10*time.Minute) {
		bad("wall_timeout", "%v is out of range (want 0 for 10 × timeout, or from timeout %v to 10m)", c.WallTimeout, c.Timeout)
	}
	if c.MaxScriptSize < 1<<10 || c.MaxScriptSize > 64<<20 {
		bad("max_script_size", "%v is out of range (want 1KiB to 64MiB)", c.MaxScriptSize)
	}
	if c.MaxOutputSize < 1<<10 || c.MaxOutputSize > 64<<20 {
		bad("max_output_size", "%v is out of range (want 1KiB to 64MiB)", c.MaxOutputSize)
	}
	if c.MaxCallStack < 16 || c.MaxCallStack > 100000 {
		bad("max_call_stack", "%d is out of range (want 16 to 100000)", c.MaxCallStack)
	}
	if c.PoolSize < 1 || c.PoolSize > 1024 {
		bad("pool_size", "%d is out of range (want 1 to 1024)", c.PoolSize)
	}
	if c.Watch && c.ScriptsDir == "" && c.TemplatesDir == "" {
		bad("watch", "is on but neither scripts_dir nor templates_dir is set")
	}
	return errors.Join(errs...)
}

// wallFactor is WallTimeout in multiples of Timeout when it is not set. A starved thread gets
// about cores/load of a core: at a load average of 17 on 2 cores (where a 100 ms wall-clock
// limit failed one valid uplink in 400,000), 1/8.5. Ten times the budget lets a script that
// needs all of its budget finish there, while a call still holds its runtime and its caller
// for at most 1 s (2 s with the retry) at the default timeout.
const wallFactor = 10

// wallTimeout is the wall-clock ceiling of one script call.
func (c Config) wallTimeout() time.Duration {
	if c.WallTimeout > 0 {
		return c.WallTimeout
	}
	return wallFactor * c.Timeout
}
