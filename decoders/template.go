package decoders

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Template file names inside configs/templates/<vendor>/<model>/.
const (
	TemplateFile = "template.yaml"
	DecoderFile  = "decoder.js"
)

// Template describes one device model: its decoder script, the units of its metrics and
// example vectors that double as tests. It lives in <templates>/<vendor>/<model>/ as
// decoder.js and template.yaml, and is the decoder named "<vendor>/<model>".
type Template struct {
	Name        string            `yaml:"name"`
	Vendor      string            `yaml:"vendor"`
	Model       string            `yaml:"model"`
	Description string            `yaml:"description"`
	Notes       string            `yaml:"notes"`
	Source      string            `yaml:"source"` // the public payload specification it follows
	Units       map[string]string `yaml:"units"`  // metric → unit of the readings
	Examples    []Example         `yaml:"examples"`

	// Dir is the template's directory and ID its decoder name, "<vendor>/<model>".
	Dir string `yaml:"-"`
	ID  string `yaml:"-"`
}

// Example is one test vector: an uplink and the output The Things Stack would show for it.
type Example struct {
	Description string            `yaml:"description"`
	FPort       int               `yaml:"fPort"`
	Bytes       Bytes             `yaml:"bytes"`
	Variables   map[string]string `yaml:"variables,omitempty"`
	RecvTime    time.Time         `yaml:"recvTime,omitempty"`
	Output      ExampleOutput     `yaml:"output"`
}

// ExampleOutput is the expected result: data, warnings, and errors when decoding must fail.
type ExampleOutput struct {
	Data     map[string]any `yaml:"data"`
	Warnings []string       `yaml:"warnings"`
	Errors   []string       `yaml:"errors"`
}

// Bytes is a payload in YAML: a hex string ("01 67 00 FF", spaces allowed) or a list of
// numbers as The Things Stack device repository writes them ([1, 103, 0, 255]).
type Bytes []byte

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *Bytes) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		raw, err := hex.DecodeString(strings.Join(strings.Fields(n.Value), ""))
		if err != nil {
			return fmt.Errorf("line %d: bytes %q is not hex", n.Line, n.Value)
		}
		*b = raw
		return nil
	case yaml.SequenceNode:
		var nums []int
		if err := n.Decode(&nums); err != nil {
			return err
		}
		out := make([]byte, len(nums))
		for i, v := range nums {
			if v < 0 || v > 255 {
				return fmt.Errorf("line %d: byte %d is %d, want 0 to 255", n.Line, i, v)
			}
			out[i] = byte(v)
		}
		*b = out
		return nil
	}
	return fmt.Errorf("line %d: bytes must be a hex string or a list of numbers", n.Line)
}

// LoadTemplate reads the template in dir; id is its decoder name ("<vendor>/<model>"). It
// reports every problem of template.yaml at once.
func LoadTemplate(dir, id string) (*Template, error) {
	path := filepath.Join(dir, TemplateFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", id, err)
	}
	var t Template
	if err := yamlUnmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("template %s: %s: %w", id, path, err)
	}
	t.Dir, t.ID = dir, id
	var errs []error
	for key, v := range map[string]string{"name": t.Name, "vendor": t.Vendor, "model": t.Model} {
		if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("%s: is empty", key))
		}
	}
	if want := t.Vendor + "/" + t.Model; t.Vendor != "" && t.Model != "" && want != id {
		errs = append(errs, fmt.Errorf("vendor/model: %s does not match the directory %s", want, id))
	}
	if _, err := os.Stat(filepath.Join(dir, DecoderFile)); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", DecoderFile, err))
	}
	for i, ex := range t.Examples {
		if ex.FPort < 0 || ex.FPort > 255 {
			errs = append(errs, fmt.Errorf("examples[%d].fPort: %d is out of range 0 to 255", i, ex.FPort))
		}
	}
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		return nil, fmt.Errorf("template %s: %s: %w", id, path, errors.Join(errs...))
	}
	return &t, nil
}

// FindTemplates returns the templates under root, each a directory holding template.yaml, by
// decoder name. root itself may be a template directory, named by its last two path elements.
func FindTemplates(root string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == TemplateFile {
			dirs = append(dirs, filepath.Dir(path))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find templates under %s: %w", root, err)
	}
	sort.Strings(dirs)
	return dirs, nil
}

// TemplateID names the template in dir: its path below root, with slashes, or the last two
// path elements when dir is root itself.
func TemplateID(root, dir string) string {
	rel, err := filepath.Rel(root, dir)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		abs, _ := filepath.Abs(dir)
		return filepath.Base(filepath.Dir(abs)) + "/" + filepath.Base(abs)
	}
	return filepath.ToSlash(rel)
}

// Compile builds the template's decoder with the sandbox limits of cfg.
func (t *Template) Compile(cfg Config, opts ScriptOptions) (*Script, error) {
	file := filepath.Join(t.Dir, DecoderFile)
	src, err := readScript(file, cfg)
	if err != nil {
		return nil, err
	}
	opts.Units = t.Units
	return NewScript(t.ID, file, src, cfg, opts)
}

// readScript reads a script file, refusing one larger than max_script_size before reading it.
func readScript(file string, cfg Config) ([]byte, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, &CompileError{File: file, Err: err}
	}
	if fi.Size() > int64(cfg.MaxScriptSize) {
		return nil, &CompileError{File: file, Err: fmt.Errorf("script is %d bytes, more than max_script_size %v", fi.Size(), cfg.MaxScriptSize)}
	}
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, &CompileError{File: file, Err: err}
	}
	return src, nil
}

// yamlUnmarshal decodes YAML strictly: unknown fields are errors.
func yamlUnmarshal(b []byte, v any) error {
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	return dec.Decode(v)
}
