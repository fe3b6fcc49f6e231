package decoders

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

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
	// Decoder is the script file in the template's directory, decoder.js when empty.
	Decoder string `yaml:"decoder"`

	// Dir is the template's directory and ID its decoder name, "<vendor>/<model>".
	Dir string `yaml:"-"`
	ID  string `yaml:"-"`
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
	if _, err := os.Stat(t.ScriptFile()); err != nil {
		errs = append(errs, fmt.Errorf("decoder: %w", err))
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

// ScriptFile is the path of the template's decoder script.
func (t *Template) ScriptFile() string {
	if t.Decoder != "" {
		return filepath.Join(t.Dir, t.Decoder)
	}
	return filepath.Join(t.Dir, DecoderFile)
}

// Compile builds the template's decoder with the sandbox limits of cfg.
func (t *Template) Compile(cfg Config, opts ScriptOptions) (*Script, error) {
	file := t.ScriptFile()
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
