package edge

import (
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sluice-iot/sluice/decoders"
)

// CheckConfig is what `sluice check` runs on the file at path: every validation Run does,
// short of opening sockets, connections and the data dir. On top of what LoadConfig reports
// (unknown keys, values of the wrong type, invalid values, the users and TLS files), it
// compiles the decoders' scripts, reads the templates, checks that every route names a
// decoder that exists, and builds the site as New does. Every problem is reported at once, in
// a *ConfigError; warnings are what is valid but probably not meant.
func CheckConfig(path string) (warnings []string, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, problems := parseConfig(raw, os.LookupEnv)
	if cfg == nil {
		return nil, &ConfigError{File: path, Problems: problems}
	}
	if cfg.Decoders.Validate() == nil {
		decs, err := decoders.Open(cfg.Decoders, zerolog.Nop(), prometheus.NewRegistry())
		if err != nil {
			problems = append(problems, fmt.Errorf("decoders: %w", err))
		} else {
			for i, r := range cfg.Routes {
				if r.Decoder == "" && r.Format.Envelope() {
					continue // the network server's decoded object, or the registry's decoder
				}
				if err := decs.Check(r.Decoder); err != nil {
					problems = append(problems, fmt.Errorf("routes[%d].decoder: %w", i, err))
				}
			}
			decs.Close()
		}
	}
	warnings = append(warnings, cfg.roleWarnings()...)
	for _, w := range cfg.MQTT.Warnings() {
		warnings = append(warnings, "mqtt."+w)
	}
	if len(problems) == 0 { // whatever else New finds: the registry, the sinks, the broker
		s, err := New(*cfg, zerolog.Nop())
		if err != nil {
			problems = append(problems, err)
		} else {
			s.release()
		}
	}
	if len(problems) > 0 {
		return warnings, &ConfigError{File: path, Problems: problems}
	}
	return warnings, nil
}
