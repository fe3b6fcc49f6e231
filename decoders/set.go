package decoders

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Set is the decoders available to routes, by name: the built-ins (json, cayenne-lpp, raw),
// the scripts of scripts_dir (by base name without .js) and the templates of templates_dir
// (by "<vendor>/<model>"). Lookup is safe for concurrent use and lock-free; Reload and Run
// change the set atomically, and a Decoder returned by Lookup keeps serving the newest version
// of its script across reloads.
type Set struct {
	byName atomic.Pointer[map[string]Decoder]

	cfg     Config
	log     zerolog.Logger
	metrics *Metrics

	mu      sync.Mutex         // serializes Reload
	sources map[string]*source // loaded scripts and templates, by decoder name

	runMu   sync.Mutex // orders Run's start against Close
	closed  bool
	done    chan struct{}
	running sync.WaitGroup
}

// source is a script or template loaded from disk.
type source struct {
	script *Script
	file   string
	sum    [32]byte // of the script and, for a template, its template.yaml
}

// NewSet returns the built-in decoders plus extra.
func NewSet(extra ...Decoder) *Set {
	s := &Set{sources: map[string]*source{}, done: make(chan struct{}), cfg: DefaultConfig(), log: zerolog.Nop()}
	m := map[string]Decoder{}
	for _, d := range append([]Decoder{JSON{}, CayenneLPP{}, Raw{}}, extra...) {
		m[d.Name()] = d
	}
	s.byName.Store(&m)
	return s
}

// Open validates cfg and builds the Set: built-ins, then every script and template, compiled.
// Every script or template that fails to load is reported, joined, and Open fails. reg may be
// nil (no metrics). Open starts no goroutine: call Run to reload on file changes.
func Open(cfg Config, log zerolog.Logger, reg prometheus.Registerer) (*Set, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := NewSet()
	s.cfg = cfg
	s.log = log.With().Str("component", "decoders").Logger()
	if reg != nil {
		m, err := NewMetrics(reg)
		if err != nil {
			return nil, fmt.Errorf("register decoder metrics: %w", err)
		}
		s.metrics = m
		byName := map[string]Decoder{}
		for name, d := range *s.byName.Load() {
			byName[name] = m.wrap(d)
		}
		s.byName.Store(&byName)
	}
	if _, err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Lookup returns the decoder called name.
func (s *Set) Lookup(name string) (Decoder, bool) {
	d, ok := (*s.byName.Load())[name]
	return d, ok
}

// Names lists the decoders, sorted.
func (s *Set) Names() []string {
	m := *s.byName.Load()
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Check returns an error naming the known decoders when name is not one of them.
func (s *Set) Check(name string) error {
	if _, ok := s.Lookup(name); ok {
		return nil
	}
	return fmt.Errorf("unknown decoder %q (known: %s)", name, strings.Join(s.Names(), ", "))
}

// Change is what one Reload did.
type Change struct {
	Loaded, Reloaded, Removed []string // decoder names
}

// Reload rescans scripts_dir and templates_dir: new files are compiled and added, changed
// ones recompiled and swapped in atomically, deleted ones removed. A script that fails to load
// is left out (when new) or keeps its previous version serving (when changed); the failures
// are returned joined, each a *CompileError naming the file and line:column where known.
func (s *Set) Reload() (Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		change Change
		errs   []error
		seen   = map[string]bool{}
	)
	found, err := s.scan()
	if err != nil {
		errs = append(errs, err)
	}
	next := map[string]Decoder{}
	for name, d := range *s.byName.Load() {
		next[name] = d
	}
	for _, f := range found {
		seen[f.name] = true
		if err := s.load(f, next, &change); err != nil {
			errs = append(errs, err)
			s.metrics.reload("error")
		}
	}
	for name := range s.sources {
		if !seen[name] && err == nil {
			delete(s.sources, name)
			delete(next, name)
			change.Removed = append(change.Removed, name)
			s.metrics.reload("removed")
		}
	}
	s.byName.Store(&next)
	sort.Strings(change.Removed)
	return change, errors.Join(errs...)
}

// found is a script or template on disk.
type found struct {
	name   string
	script string // the .js file
	meta   string // template.yaml, "" for a plain script
}

func (s *Set) scan() ([]found, error) {
	var out []found
	var errs []error
	if dir := s.cfg.ScriptsDir; dir != "" {
		files, err := filepath.Glob(filepath.Join(dir, "*.js"))
		if err != nil {
			errs = append(errs, fmt.Errorf("scripts_dir: %w", err))
		}
		if _, err := os.Stat(dir); err != nil {
			errs = append(errs, fmt.Errorf("scripts_dir: %w", err))
		}
		for _, f := range files {
			out = append(out, found{name: strings.TrimSuffix(filepath.Base(f), ".js"), script: f})
		}
	}
	if root := s.cfg.TemplatesDir; root != "" {
		dirs, err := FindTemplates(root)
		if err != nil {
			errs = append(errs, fmt.Errorf("templates_dir: %w", err))
		}
		for _, d := range dirs {
			out = append(out, found{name: TemplateID(root, d), script: filepath.Join(d, DecoderFile), meta: filepath.Join(d, TemplateFile)})
		}
	}
	return out, errors.Join(errs...)
}

// load compiles f when it is new or changed and puts it in next.
func (s *Set) load(f found, next map[string]Decoder, change *Change) error {
	src, err := readScript(f.script, s.cfg)
	if err != nil {
		return err
	}
	h := sha256.New()
	h.Write(src)
	var units map[string]string
	if f.meta != "" {
		meta, err := os.ReadFile(f.meta)
		if err != nil {
			return fmt.Errorf("template %s: %w", f.name, err)
		}
		h.Write(meta)
		tpl, err := LoadTemplate(filepath.Dir(f.meta), f.name)
		if err != nil {
			return err
		}
		units = tpl.Units
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	old := s.sources[f.name]
	if old != nil && old.sum == sum {
		return nil
	}
	opts := ScriptOptions{Units: units, Log: s.log, Metrics: s.metrics}
	if old != nil {
		if err := old.script.Reload(f.script, src, s.cfg, opts); err != nil {
			return err
		}
		old.sum = sum
		change.Reloaded = append(change.Reloaded, f.name)
		s.metrics.reload("ok")
		return nil
	}
	if _, taken := next[f.name]; taken {
		return fmt.Errorf("%s: decoder name %q is already taken", f.script, f.name)
	}
	sc, err := NewScript(f.name, f.script, src, s.cfg, opts)
	if err != nil {
		return err
	}
	s.sources[f.name] = &source{script: sc, file: f.script, sum: sum}
	next[f.name] = s.metrics.wrap(sc)
	change.Loaded = append(change.Loaded, f.name)
	s.metrics.reload("ok")
	return nil
}

// Close stops Run and waits for it to return. It is idempotent and returns nil.
func (s *Set) Close() error {
	s.runMu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	s.runMu.Unlock()
	s.running.Wait()
	return nil
}

// started registers a running Run; false when the set is already closed.
func (s *Set) started() bool {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.closed {
		return false
	}
	s.running.Add(1)
	return true
}
