// Package registry is the device registry: what Sluice knows about each device beyond its
// uplinks (tenant, decoder, variables, retention class, tags), read from a YAML or CSV file and
// reloaded when the file changes. It knows no MQTT, NATS or SQL.
package registry

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/sluice-iot/sluice/decoders"
)

// Config locates the device registry file.
type Config struct {
	// File is the registry: YAML (.yaml, .yml) or CSV (.csv). Empty means no registry: every
	// device is unknown and follows its route's unknown_devices policy.
	File string `yaml:"file"`
	// Watch reloads the file when it changes. A file that fails to load is reported and the
	// previous registry stays in force.
	Watch bool `yaml:"watch"`
}

// DefaultConfig is no registry, watched when one is set.
func DefaultConfig() Config { return Config{Watch: true} }

// Validate reports every problem of c.
func (c Config) Validate() error {
	if c.File == "" {
		return nil
	}
	switch strings.ToLower(filepath.Ext(c.File)) {
	case ".yaml", ".yml", ".csv":
		return nil
	}
	return fmt.Errorf("file: %q must end in .yaml, .yml or .csv", c.File)
}

// Device is one registry entry: what Sluice knows about a device beyond its uplinks.
type Device struct {
	// Device is the device's id as its route names it (DevEUI in lower-case hex by default),
	// or its DevEUI, or its network-server name.
	Device string `yaml:"device"`
	// Tenant overrides the tenant of the route and of the envelope.
	Tenant string `yaml:"tenant"`
	// Decoder decodes the device's payloads, overriding the route's decoder; a template is
	// named "<vendor>/<model>".
	Decoder string `yaml:"decoder"`
	// Variables are given to the decoder (ChirpStack's variables, TTS's input.variables).
	Variables map[string]string `yaml:"variables"`
	// Class is the device's retention class.
	Class string `yaml:"class"`
	// Tags are free-form labels.
	Tags map[string]string `yaml:"tags"`
}

// Registry maps devices to their tenant, decoder, variables, retention class and tags, from a
// file that Run reloads when it changes. Lookups are lock-free and safe for concurrent use; a
// reload swaps the whole table at once, so an uplink sees the old or the new registry, never a
// mix.
type Registry struct {
	cfg     Config
	decs    *decoders.Set
	log     zerolog.Logger
	devices atomic.Pointer[map[string]*Device]

	reloads *prometheus.CounterVec
}

// New reads the registry file (none when cfg.File is empty) and checks that every
// decoder it names is in decs. It reports every problem of the file at once.
func New(cfg Config, decs *decoders.Set, log zerolog.Logger, reg prometheus.Registerer) (*Registry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Registry{cfg: cfg, decs: decs, log: log.With().Str("component", "registry").Logger(),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_registry_reloads_total",
			Help: "Device registry loads, by result (ok, error: the previous registry stays in force).",
		}, []string{"result"}),
	}
	devices := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_registry_devices",
		Help: "Devices in the device registry.",
	}, func() float64 { return float64(r.Len()) })
	r.reloads.WithLabelValues("ok") // every series exists from the start, at 0
	r.reloads.WithLabelValues("error")
	reg.MustRegister(r.reloads, devices)
	empty := map[string]*Device{}
	r.devices.Store(&empty)
	if cfg.File != "" {
		if err := r.Load(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Lookup returns the entry of the first key that names a device, or nil. DevEUIs match in any
// case.
func (r *Registry) Lookup(keys ...string) *Device {
	m := *r.devices.Load()
	for _, k := range keys {
		if k == "" {
			continue
		}
		if d, ok := m[k]; ok {
			return d
		}
		if d, ok := m[strings.ToLower(k)]; ok {
			return d
		}
	}
	return nil
}

// Len is the number of devices.
func (r *Registry) Len() int { return len(*r.devices.Load()) }

// Load reads the file again and, when it is valid, replaces the registry.
func (r *Registry) Load() error {
	m, err := loadRegistry(r.cfg.File, r.decs)
	if err != nil {
		r.reloads.WithLabelValues("error").Inc()
		return err
	}
	r.devices.Store(&m)
	r.reloads.WithLabelValues("ok").Inc()
	return nil
}

// Run reloads the registry whenever its file changes, until ctx ends. It watches the file's
// directory, so that editors and tools that replace the file (rename over it) are seen too.
// Without a file, or with watch off, it just waits for ctx.
func (r *Registry) Run(ctx context.Context) error {
	if r.cfg.File == "" || !r.cfg.Watch {
		<-ctx.Done()
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch registry: %w", err)
	}
	defer w.Close()
	dir, base := filepath.Dir(r.cfg.File), filepath.Base(r.cfg.File)
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch registry %s: %w", dir, err)
	}
	// Changes come in bursts (truncate, write, chmod): reload once they settle.
	const settle = 100 * time.Millisecond
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if filepath.Base(ev.Name) == base && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 {
				timer.Reset(settle)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			r.log.Warn().Err(err).Msg("watching the registry")
		case <-timer.C:
			if err := r.Load(); err != nil {
				r.log.Error().Err(err).Msg("registry not reloaded; the previous one stays in force")
				continue
			}
			r.log.Info().Int("devices", r.Len()).Msg("registry reloaded")
		}
	}
}

// loadRegistry parses a YAML or CSV registry file and checks it, reporting every problem.
func loadRegistry(file string, decs *decoders.Set) (map[string]*Device, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	var list []Device
	if strings.EqualFold(filepath.Ext(file), ".csv") {
		list, err = parseRegistryCSV(raw)
	} else {
		list, err = parseRegistryYAML(raw)
	}
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", file, err)
	}
	m := make(map[string]*Device, len(list))
	var errs []error
	for i := range list {
		d := &list[i]
		d.Device = strings.TrimSpace(d.Device)
		key := d.Device
		if isEUI(key) {
			key = strings.ToLower(key)
		}
		switch {
		case key == "":
			errs = append(errs, fmt.Errorf("devices[%d].device: required", i))
			continue
		case m[key] != nil:
			errs = append(errs, fmt.Errorf("devices[%d].device: %q is listed twice", i, d.Device))
			continue
		}
		if d.Decoder != "" && decs != nil {
			if err := decs.Check(d.Decoder); err != nil {
				errs = append(errs, fmt.Errorf("devices[%d].decoder: %w", i, err))
			}
		}
		m[key] = d
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("registry %s: %w", file, errors.Join(errs...))
	}
	return m, nil
}

func parseRegistryYAML(raw []byte) ([]Device, error) {
	var doc struct {
		Devices []Device `yaml:"devices"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return doc.Devices, nil
}

// registryColumns are the CSV columns; the header row names them, in any order. variables and
// tags hold key=value pairs separated by ';'.
var registryColumns = []string{"device", "tenant", "decoder", "class", "variables", "tags"}

func parseRegistryCSV(raw []byte) ([]Device, error) {
	rd := csv.NewReader(bytes.NewReader(raw))
	rd.Comment = '#'
	rd.TrimLeadingSpace = true
	rd.FieldsPerRecord = -1 // trailing empty columns may be left out
	rows, err := rd.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	col := map[string]int{}
	var errs []error
	for i, h := range rows[0] {
		h = strings.ToLower(strings.TrimSpace(h))
		if !slices.Contains(registryColumns, h) {
			errs = append(errs, fmt.Errorf("header: unknown column %q (known: %s)", h, strings.Join(registryColumns, ", ")))
		}
		col[h] = i
	}
	if _, ok := col["device"]; !ok {
		errs = append(errs, errors.New("header: no device column"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	get := func(row []string, name string) string {
		if i, ok := col[name]; ok && i < len(row) {
			return strings.TrimSpace(row[i])
		}
		return ""
	}
	out := make([]Device, 0, len(rows)-1)
	for n, row := range rows[1:] {
		d := Device{Device: get(row, "device"), Tenant: get(row, "tenant"), Decoder: get(row, "decoder"), Class: get(row, "class")}
		var err error
		if d.Variables, err = pairs(get(row, "variables")); err != nil {
			errs = append(errs, fmt.Errorf("line %d: variables: %w", n+2, err))
		}
		if d.Tags, err = pairs(get(row, "tags")); err != nil {
			errs = append(errs, fmt.Errorf("line %d: tags: %w", n+2, err))
		}
		out = append(out, d)
	}
	return out, errors.Join(errs...)
}

// pairs parses "k=v;k2=v2".
func pairs(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	m := map[string]string{}
	for _, p := range strings.Split(s, ";") {
		if strings.TrimSpace(p) == "" {
			continue
		}
		k, v, ok := strings.Cut(p, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("%q is not key=value", p)
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m, nil
}

// isEUI reports whether s is a 64-bit EUI in hex.
func isEUI(s string) bool {
	if len(s) != 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
