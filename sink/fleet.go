package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-iot/sluice"
)

// Roles of a Sluice process in a fleet (docs/fleet.md).
const (
	// RoleAll is one site on its own: broker, buffer and database sinks in one process.
	RoleAll = "all"
	// RoleEdge is an edge site: broker and buffer, its embedded server a leafnode of the hub
	// in a JetStream domain of its own (the site name); the hub stream sources its stream, and
	// the workers mark what the hub holds on the consumer HubConsumer. It runs no database sink.
	RoleEdge = "edge"
	// RoleWorker is a hub sink worker: no broker; the buffer is the hub stream, which sources
	// the sites' streams, and the targets' durable consumers are shared with the other workers.
	RoleWorker = "worker"
)

// HubConsumer names the durable consumer of an edge's stream that marks what the hub holds: it
// is never read; the workers move its acknowledgement floor to the last message of the site
// they received from the hub stream, and reclaim keeps everything above it.
const HubConsumer = "hub"

// SiteHeader carries an edge's site name on every message it stores, so that the workers know
// whose message they hold (with its sequence at the site, from the Nats-Stream-Source header
// the hub's sourcing adds).
const SiteHeader = "Sluice-Site"

// HubDeliverPrefix prefixes the subjects the hub's sourcing consumer on an edge delivers to:
// besides replies, the only subjects a site may publish to the hub (deploy/fleet/hub.conf).
func HubDeliverPrefix(site string) string { return "sluice.fleet." + site }

// HubAPIPrefix is the prefix of site's JetStream API as seen from the hub.
func HubAPIPrefix(site string) string { return "$JS." + site + ".API" }

// HubConfig is an edge's leafnode link to the hub (nats.hub).
type HubConfig struct {
	// URLs of the hub servers' leafnode ports (nats-leaf://host:7422, or tls://…).
	URLs []string `yaml:"urls"`
	// User and Password, or Credentials (a .creds file), authenticate the site at the hub.
	User        string `yaml:"user"`
	Password    string `yaml:"password"`
	Credentials string `yaml:"credentials"`
	// TLS of the link: the CA that signed the hub's certificate and, for mutual TLS, the
	// site's certificate and key.
	TLS struct {
		CA   string `yaml:"ca"`
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
	} `yaml:"tls"`
}

func (h HubConfig) empty() bool {
	return len(h.URLs) == 0 && h.User == "" && h.Password == "" && h.Credentials == "" &&
		h.TLS.CA == "" && h.TLS.Cert == "" && h.TLS.Key == ""
}

// A site name is a JetStream domain and a subject token.
var siteName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// checkSite returns why s, the value of key, is not a site name, or nil.
func checkSite(key, s string) error {
	if siteName.MatchString(s) {
		return nil
	}
	return fmt.Errorf("%s: %q is not a valid site name (1 to 32 letters, digits, - and _)", key, s)
}

// validateFleet checks the keys of the fleet roles; the role itself is validated by the site.
func (c BufferConfig) validateFleet() []error {
	var errs []error
	if c.Role == RoleWorker && (c.Replicas < 1 || c.Replicas > 5) {
		errs = append(errs, fmt.Errorf("replicas: %d is outside 1..5", c.Replicas))
	}
	switch c.Role {
	case RoleEdge:
		if c.URL != "" {
			errs = append(errs, errors.New("url: an edge runs its embedded server; remove url (the hub is nats.hub.urls)"))
		}
		if c.Site == "" {
			errs = append(errs, errors.New("site: required in role edge (the site's JetStream domain)"))
		} else if err := checkSite("site", c.Site); err != nil {
			errs = append(errs, err)
		}
		errs = append(errs, c.Hub.validate()...)
		if len(c.Sources) > 0 {
			errs = append(errs, errors.New("sources: only a worker sources sites; remove it in role edge"))
		}
	case RoleWorker:
		if c.URL == "" {
			errs = append(errs, errors.New("url: required in role worker (the hub cluster)"))
		}
		if c.Site != "" {
			errs = append(errs, errors.New("site: only an edge has a site; remove it in role worker"))
		}
		if !c.Hub.empty() {
			errs = append(errs, errors.New("hub: only an edge links to the hub; remove it in role worker"))
		}
		seen := map[string]bool{}
		for i, s := range c.Sources {
			if err := checkSite(fmt.Sprintf("sources[%d]", i), s); err != nil {
				errs = append(errs, err)
			}
			if seen[s] {
				errs = append(errs, fmt.Errorf("sources[%d]: %q is listed twice", i, s))
			}
			seen[s] = true
		}
	default:
		if c.Site != "" {
			errs = append(errs, errors.New("site: only used in role edge"))
		}
		if !c.Hub.empty() {
			errs = append(errs, errors.New("hub: only used in role edge"))
		}
		if len(c.Sources) > 0 {
			errs = append(errs, errors.New("sources: only used in role worker"))
		}
	}
	return errs
}

func (h HubConfig) validate() []error {
	var errs []error
	if len(h.URLs) == 0 {
		errs = append(errs, errors.New("hub.urls: at least one hub URL is required in role edge"))
	}
	for i, s := range h.URLs {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			errs = append(errs, fmt.Errorf("hub.urls[%d]: %q is not a URL like nats-leaf://hub:7422", i, s))
			continue
		}
		switch u.Scheme {
		case "nats-leaf", "nats", "tls", "ws", "wss":
		default:
			errs = append(errs, fmt.Errorf("hub.urls[%d]: scheme %q is not one of nats-leaf, nats, tls, ws, wss", i, u.Scheme))
		}
		if u.User != nil {
			errs = append(errs, fmt.Errorf("hub.urls[%d]: put the user and password in hub.user and hub.password", i))
		}
	}
	if h.Password != "" && h.User == "" {
		errs = append(errs, errors.New("hub.password: set hub.user too"))
	}
	if h.Credentials != "" && h.User != "" {
		errs = append(errs, errors.New("hub.credentials: use either a credentials file or hub.user, not both"))
	}
	if (h.TLS.Cert == "") != (h.TLS.Key == "") {
		errs = append(errs, errors.New("hub.tls.cert, hub.tls.key: set both or neither"))
	}
	for _, f := range [][2]string{{"hub.credentials", h.Credentials}, {"hub.tls.ca", h.TLS.CA}, {"hub.tls.cert", h.TLS.Cert}, {"hub.tls.key", h.TLS.Key}} {
		if f[1] == "" {
			continue
		}
		if _, err := os.Stat(f[1]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", f[0], err))
		}
	}
	return errs
}

// Subjects an edge keeps to itself across the leafnode: its readings reach the hub through
// the hub stream's sourcing only (delivered under HubDeliverPrefix), and nothing from the hub
// lands in its stream.
var siteLocal = []string{sluice.UplinkPrefix + ">", sluice.ErrorPrefix + ">", sluice.DLQPrefix + ">"}

// leafRemote is the edge's leafnode remote to the hub.
func (c BufferConfig) leafRemote() (*server.RemoteLeafOpts, error) {
	r := &server.RemoteLeafOpts{
		Credentials: c.Hub.Credentials,
		DenyImports: siteLocal,
		DenyExports: siteLocal,
	}
	for i, s := range c.Hub.URLs {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("hub.urls[%d]: %w", i, err)
		}
		if c.Hub.User != "" {
			u.User = url.UserPassword(c.Hub.User, c.Hub.Password)
		}
		r.URLs = append(r.URLs, u)
	}
	if c.Hub.TLS.CA != "" || c.Hub.TLS.Cert != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.Hub.TLS.CA != "" {
			pem, err := os.ReadFile(c.Hub.TLS.CA)
			if err != nil {
				return nil, fmt.Errorf("hub.tls.ca: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("hub.tls.ca: no certificate in %s", c.Hub.TLS.CA)
			}
		}
		if c.Hub.TLS.Cert != "" {
			cert, err := tls.LoadX509KeyPair(c.Hub.TLS.Cert, c.Hub.TLS.Key)
			if err != nil {
				return nil, fmt.Errorf("hub.tls.cert: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		r.TLS, r.TLSConfig = true, tc
	}
	return r, nil
}

// fleetOptions makes the embedded server of an edge a leafnode of the hub in the site's domain.
func (b *Buffer) fleetOptions(opts *server.Options) error {
	if b.cfg.Role != RoleEdge {
		return nil
	}
	r, err := b.cfg.leafRemote()
	if err != nil {
		return err
	}
	opts.ServerName = "sluice-" + b.cfg.Site
	opts.JetStreamDomain = b.cfg.Site
	opts.LeafNode.Remotes = []*server.RemoteLeafOpts{r}
	opts.LeafNode.ReconnectInterval = time.Second
	return nil
}

// stampSite marks a message stored at an edge with its site: the site header, and the site
// prefixed to its id, since the hub stream de-duplicates by id across every site.
func (b *Buffer) stampSite(msg *nats.Msg, id string) {
	if b.cfg.Role != RoleEdge {
		if id != "" {
			msg.Header = nats.Header{jetstream.MsgIDHeader: []string{id}} // already canonical
		}
		return
	}
	msg.Header = nats.Header{SiteHeader: []string{b.cfg.Site}}
	if id != "" {
		msg.Header[jetstream.MsgIDHeader] = []string{b.cfg.Site + ":" + id}
	}
}

// replicas is the replica count of the streams the buffer makes: the configured one on the
// hub, the server's default otherwise (so that an existing stream is never scaled).
func (b *Buffer) replicas() int {
	if b.cfg.Role == RoleWorker {
		return b.cfg.Replicas
	}
	return 0
}

// ensureFleet makes what the role needs besides the streams: an edge's hub consumer.
func (b *Buffer) ensureFleet(ctx context.Context) error {
	if b.cfg.Role != RoleEdge {
		return nil
	}
	_, err := b.js.CreateOrUpdateConsumer(ctx, b.cfg.Stream, jetstream.ConsumerConfig{
		Durable:       HubConsumer,
		Description:   "Sluice hub: its acknowledgement floor is the last message of site " + b.cfg.Site + " the hub holds",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("create consumer %s on %s: %w", HubConsumer, b.cfg.Stream, err)
	}
	return nil
}

// siteSource is the hub stream's source for one site: the server makes a flow-controlled
// consumer on the site's stream for each link, starting after the last message it holds.
func (b *Buffer) siteSource(site string) *jetstream.StreamSource {
	return &jetstream.StreamSource{
		Name:     b.cfg.Stream,
		External: &jetstream.ExternalStream{APIPrefix: HubAPIPrefix(site), DeliverPrefix: HubDeliverPrefix(site)},
	}
}

// sourceSite is the site a hub stream source reads, "" when it is not a site.
func sourceSite(s *jetstream.StreamSource) string {
	if s.External == nil {
		return ""
	}
	return apiPrefixSite(s.External.APIPrefix)
}

// apiPrefixSite is the site whose JetStream API prefix is p, "" when it is not a site's.
func apiPrefixSite(p string) string {
	site, ok := strings.CutPrefix(p, "$JS.")
	if !ok {
		return ""
	}
	site, _ = strings.CutSuffix(site, ".API")
	return site
}

// ensureHubStream creates or updates the hub stream: no subjects of its own, the sources of
// the sites in nats.sources added to those it has. Workers start concurrently, so the update
// is checked and tried again when another worker's update replaced it.
func (b *Buffer) ensureHubStream(ctx context.Context) error {
	want := b.StreamConfig()
	want.Description = "Sluice hub: the streams of the edge sites"
	want.Subjects = nil
	want.Replicas = b.cfg.Replicas
	for attempt := 0; ; attempt++ {
		cfg := want
		have := map[string]bool{}
		var cur *jetstream.StreamConfig
		if s, err := b.js.Stream(ctx, b.cfg.Stream); err == nil {
			cur = &s.CachedInfo().Config
			cfg.Sources = cur.Sources
			for _, src := range cfg.Sources {
				have[sourceSite(src)] = true
			}
		} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("look up hub stream %s: %w", b.cfg.Stream, err)
		}
		missing := 0
		for _, site := range b.cfg.Sources {
			if !have[site] {
				cfg.Sources = append(cfg.Sources, b.siteSource(site))
				missing++
			}
		}
		// Nothing to change (another worker starting, or this one restarting): no update, so
		// that workers starting never rewrite the hub stream's configuration under the others.
		if cur != nil && missing == 0 && sameLimits(*cur, cfg) {
			return nil
		}
		s, err := b.js.CreateOrUpdateStream(ctx, cfg)
		if err != nil {
			return fmt.Errorf("create hub stream %s: %w", b.cfg.Stream, err)
		}
		got := map[string]bool{}
		for _, src := range s.CachedInfo().Config.Sources {
			got[sourceSite(src)] = true
		}
		ok := true
		for _, site := range b.cfg.Sources {
			ok = ok && got[site]
		}
		if ok {
			b.log.Info().Strs("sources", b.cfg.Sources).Int("added", missing).Msg("hub stream updated: it sources the sites")
			return nil
		}
		if attempt == 4 {
			return fmt.Errorf("hub stream %s: other workers' updates kept replacing its sources", b.cfg.Stream)
		}
	}
}

// sameLimits reports whether the hub stream's configuration a has the limits b asks for.
func sameLimits(a, b jetstream.StreamConfig) bool {
	return a.MaxBytes == b.MaxBytes && a.MaxAge == b.MaxAge && a.Duplicates == b.Duplicates &&
		a.Replicas == b.Replicas && a.Discard == b.Discard
}

// HubStatus is where an edge stands with the hub.
type HubStatus struct {
	Site string `json:"site"`
	// Connected reports the leafnode link to the hub.
	Connected bool `json:"connected"`
	// LagMessages are the messages stored at this site the hub does not hold yet.
	LagMessages uint64 `json:"lag_messages"`
	// HeldSequence is the last sequence of this site's stream the hub holds, with all before it.
	HeldSequence uint64 `json:"held_sequence"`
	Error        string `json:"error,omitempty"`
}

type fleetMetrics struct {
	connected prometheus.Gauge
	lag       prometheus.Gauge
	restarts  *prometheus.CounterVec // role worker
}

func newFleetMetrics(reg prometheus.Registerer, role string) *fleetMetrics {
	if role == RoleWorker {
		m := &fleetMetrics{restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_fleet_source_restarts_total",
			Help: "Times this worker restarted the hub stream's source of a site that answered while its source was silent.",
		}, []string{"site"})}
		reg.MustRegister(m.restarts)
		return m
	}
	if role != RoleEdge {
		return nil
	}
	m := &fleetMetrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_fleet_hub_connected", Help: "1 while the leafnode link to the hub is up."}),
		lag:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_fleet_hub_lag_messages", Help: "Messages stored at this site that the hub does not hold yet."}),
	}
	reg.MustRegister(m.connected, m.lag)
	return m
}

// Hub reports the link to the hub; nil unless the role is edge. It needs an open buffer.
func (b *Buffer) Hub(ctx context.Context) *HubStatus {
	if b.cfg.Role != RoleEdge {
		return nil
	}
	h := &HubStatus{Site: b.cfg.Site, Connected: b.ns != nil && b.ns.NumLeafNodes() > 0}
	b.fm.connected.Set(map[bool]float64{false: 0, true: 1}[h.Connected])
	c, err := b.js.Consumer(ctx, b.cfg.Stream, HubConsumer)
	if err != nil {
		h.Error = fmt.Sprintf("consumer %s: %v", HubConsumer, err)
		return h
	}
	info := c.CachedInfo()
	h.LagMessages = info.NumPending
	h.HeldSequence = info.AckFloor.Stream
	b.fm.lag.Set(float64(h.LagMessages))
	return h
}

// RunHub does the role's periodic fleet work, once a second, until ctx is cancelled: an edge
// keeps its hub metrics current and reclaims what the hub holds; a worker tells each site
// what the hub holds of it (held.go). It returns at once in role all.
func (b *Buffer) RunHub(ctx context.Context) {
	if b.cfg.Role == RoleAll {
		return
	}
	tick := time.NewTicker(reclaimEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if b.cfg.Role == RoleEdge {
				b.Hub(ctx)
				b.reclaim(ctx)
			} else {
				b.held.report(ctx, b)
				b.nudgeSources(ctx)
			}
		}
	}
}
