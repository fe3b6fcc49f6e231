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
	// Timeout is the wall-clock budget of one script call (and of a script's top level).
	Timeout time.Duration `yaml:"timeout"`
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
