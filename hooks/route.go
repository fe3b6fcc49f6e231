package hooks

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sluice-iot/sluice/decoders"
)

// RouteConfig maps an MQTT topic filter to a decoder. The filter may use {tenant} and {device}
// to take those ids from topic levels, besides the usual + and # wildcards.
type RouteConfig struct {
	Topic   string `yaml:"topic"`
	Decoder string `yaml:"decoder"`
	// Tenant is the tenant of every message on the route when the filter has no {tenant}.
	// With a LoRaWAN format it may be empty: the envelope (or the registry) names the tenant.
	Tenant string `yaml:"tenant"`
	// Format is the envelope of the messages: raw (default; the payload is the device's bytes
	// and the ids come from the topic), chirpstack or ttn (see lorawan.go). With a LoRaWAN
	// format, Decoder may be empty: the network server's decoded object is used.
	Format decoders.Format `yaml:"format"`
	// LoRaWAN options, used by the chirpstack and ttn formats only.
	LoRaWAN LoRaWANRouteConfig `yaml:",inline"`
}

// route is a compiled RouteConfig.
type route struct {
	cfg    RouteConfig
	levels []string
}

// Match is the result of routing one topic.
type Match struct {
	Route  *RouteConfig
	Tenant string
	Device string
}

// Router finds the route of a topic: the first configured route that matches wins.
type Router struct{ routes []route }

// NewRouter compiles routes; it reports every invalid filter.
func NewRouter(cfgs []RouteConfig) (*Router, error) {
	r := &Router{}
	var errs []error
	for i, c := range cfgs {
		if err := validateFilter(c); err != nil {
			errs = append(errs, fmt.Errorf("routes[%d].topic: %w", i, err))
			continue
		}
		if err := c.validateLoRaWAN(); err != nil {
			errs = append(errs, prefixed(fmt.Sprintf("routes[%d].", i), err)...)
			continue
		}
		r.routes = append(r.routes, route{cfg: c, levels: strings.Split(c.Topic, "/")})
	}
	return r, errors.Join(errs...)
}

func validateFilter(c RouteConfig) error {
	if c.Topic == "" {
		return errors.New("empty filter")
	}
	levels := strings.Split(c.Topic, "/")
	var device, tenant bool
	for i, l := range levels {
		switch {
		case l == "#":
			if i != len(levels)-1 {
				return fmt.Errorf("%q: # must be the last level", c.Topic)
			}
		case l == "{device}":
			if device {
				return fmt.Errorf("%q: {device} appears twice", c.Topic)
			}
			device = true
		case l == "{tenant}":
			if tenant {
				return fmt.Errorf("%q: {tenant} appears twice", c.Topic)
			}
			tenant = true
		case strings.ContainsAny(l, "#+{}") && l != "+":
			return fmt.Errorf("%q: level %q mixes a wildcard or placeholder with text", c.Topic, l)
		}
	}
	if c.Format.Envelope() { // the envelope names the device and the tenant
		return nil
	}
	if !device {
		return fmt.Errorf("%q: has no {device} level", c.Topic)
	}
	if !tenant && c.Tenant == "" {
		return fmt.Errorf("%q: has no {tenant} level and the route sets no tenant", c.Topic)
	}
	return nil
}

// Match routes topic; ok is false when no route matches.
func (r *Router) Match(topic string) (m Match, ok bool) {
	for i := range r.routes {
		if m, ok = r.routes[i].match(topic); ok {
			return m, true
		}
	}
	return Match{}, false
}

func (rt *route) match(topic string) (Match, bool) {
	if strings.HasPrefix(topic, "$") { // $SYS and friends are never device topics
		return Match{}, false
	}
	levels := strings.Split(topic, "/")
	m := Match{Route: &rt.cfg, Tenant: rt.cfg.Tenant}
	for i, l := range rt.levels {
		if l == "#" {
			return m, true
		}
		if i >= len(levels) {
			return Match{}, false
		}
		switch l {
		case "+":
		case "{device}":
			m.Device = levels[i]
		case "{tenant}":
			m.Tenant = levels[i]
		default:
			if levels[i] != l {
				return Match{}, false
			}
		}
	}
	if len(levels) != len(rt.levels) || !rt.cfg.Format.Envelope() && (m.Device == "" || m.Tenant == "") {
		return Match{}, false
	}
	return m, true
}
