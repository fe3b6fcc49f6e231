package broker

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"runtime"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"
)

// authHook authenticates clients (bcrypt password, verified client certificate, or anonymous
// when allowed) and applies the ACL to every publish and subscription. It is safe for
// concurrent use by all client goroutines.
type authHook struct {
	mqtt.HookBase
	users     map[string]*user // read-only after construction
	acl       []aclRule
	anonymous bool
	certSAN   bool // name certificate users by SAN rather than CN
	m         *metrics
	warn      zerolog.Logger // sampled: failed logins and denials

	// bcrypt costs tens of milliseconds of CPU: at most slots verifications run at once, so a
	// login storm cannot starve ingest, and a password verified once is remembered (as an
	// HMAC under a key that lives only in memory) so that reconnects are cheap.
	slots    chan struct{}
	key      [32]byte
	mu       sync.Mutex
	verified map[string][32]byte // username → HMAC of the last good password; bounded by users
	throttle *throttle           // nil: no throttle

	// owners maps the client id of every session (connected or kept for max_session_expiry)
	// to its user, so that one user cannot take over another's session by its client id.
	ownersMu sync.Mutex
	owners   map[string]string
}

func newAuthHook(cfg Config, m *metrics, log zerolog.Logger) (*authHook, error) {
	users, err := cfg.Auth.load()
	if err != nil {
		return nil, err
	}
	h := &authHook{
		users:     users,
		anonymous: cfg.AllowAnonymous,
		certSAN:   cfg.Auth.CertUsername == "san",
		m:         m,
		warn:      log.Sample(&zerolog.BurstSampler{Burst: 10, Period: 10 * time.Second}),
		slots:     make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
		verified:  map[string][32]byte{},
		owners:    map[string]string{},
		throttle:  newThrottle(cfg.Auth.FailedLogins),
	}
	for _, r := range cfg.Auth.ACL {
		h.acl = append(h.acl, r.compile())
	}
	if _, err := rand.Read(h.key[:]); err != nil {
		return nil, err
	}
	return h, nil
}

// ID implements mqtt.Hook.
func (h *authHook) ID() string { return "sluice-auth" }

// Provides implements mqtt.Hook.
func (h *authHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck || b == mqtt.OnDisconnect || b == mqtt.OnClientExpired
}

// OnConnectAuthenticate implements mqtt.Hook. A verified client certificate names the user
// (and the CONNECT username, if any, must agree); otherwise the username and bcrypt password
// must match a configured user; a client with neither is admitted only with allow_anonymous.
func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	method, ok := h.authenticate(cl, pk)
	if !ok {
		return false
	}
	// A will is published by the broker on the client's behalf, and mochi checks no ACL for
	// it: a will topic the client could not publish to refuses the login.
	if pk.Connect.WillFlag && !h.allowed(cl, pk.Connect.WillTopic, true) {
		return h.fail(cl, "will_not_authorized", string(cl.Properties.Username))
	}
	name := string(cl.Properties.Username)
	h.ownersMu.Lock()
	owner, taken := h.owners[cl.ID]
	if !taken || owner == name {
		h.owners[cl.ID] = name
	}
	h.ownersMu.Unlock()
	if taken && owner != name {
		return h.fail(cl, "client_id_taken", name)
	}
	h.m.logins.WithLabelValues(method).Inc()
	return true
}

// OnDisconnect implements mqtt.Hook: a session that ends with its connection frees its
// client id.
func (h *authHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if expire && !cl.IsTakenOver() {
		h.release(cl)
	}
}

// OnClientExpired implements mqtt.Hook: a kept session expired.
func (h *authHook) OnClientExpired(cl *mqtt.Client) { h.release(cl) }

func (h *authHook) release(cl *mqtt.Client) {
	h.ownersMu.Lock()
	if h.owners[cl.ID] == string(cl.Properties.Username) {
		delete(h.owners, cl.ID)
	}
	h.ownersMu.Unlock()
}

// authenticate returns the login method, or false after counting and logging the failure.
func (h *authHook) authenticate(cl *mqtt.Client, pk packets.Packet) (string, bool) {
	name := string(pk.Connect.Username)
	if id, ok := h.certIdentity(cl); ok {
		if name != "" && name != id {
			return "", h.fail(cl, "certificate_mismatch", name)
		}
		cl.Properties.Username = []byte(id) // the ACL's %u
		return "certificate", true
	}
	if name == "" && len(pk.Connect.Password) == 0 {
		if h.anonymous {
			return "anonymous", true
		}
		return "", h.fail(cl, "no_credentials", name)
	}
	u := h.users[name]
	if u != nil && u.hash != nil && h.remembered(u, pk.Connect.Password) {
		return "password", true // never throttled: see LoginThrottleConfig
	}
	keys := throttleKeys(cl.Net.Remote, name)
	if !h.throttle.allow(keys) {
		return "", h.fail(cl, "throttled", name)
	}
	switch {
	case u == nil:
		// Spend the same time as a real check, so that timing does not reveal usernames.
		h.check(dummyHash(), pk.Connect.Password)
		h.throttle.failed(keys)
		return "", h.fail(cl, "unknown_user", name)
	case u.hash == nil:
		return "", h.fail(cl, "no_password", name)
	case !h.verify(u, pk.Connect.Password):
		h.throttle.failed(keys)
		return "", h.fail(cl, "bad_password", name)
	}
	return "password", true
}

func (h *authHook) fail(cl *mqtt.Client, reason, username string) bool {
	h.m.authFailures.WithLabelValues(reason).Inc()
	h.warn.Warn().Str("reason", reason).Str("remote", cl.Net.Remote).Str("listener", cl.Net.Listener).
		Str("username", username).Str("client", cl.ID).Msg("mqtt login refused")
	return false
}

// remembered reports whether password is u's last verified good password (no bcrypt spent).
func (h *authHook) remembered(u *user, password []byte) bool {
	sum := h.mac(password)
	h.mu.Lock()
	good, ok := h.verified[u.name]
	h.mu.Unlock()
	return ok && hmac.Equal(good[:], sum[:])
}

func (h *authHook) mac(password []byte) (sum [32]byte) {
	mac := hmac.New(sha256.New, h.key[:])
	mac.Write(password)
	mac.Sum(sum[:0])
	return sum
}

// verify checks password against u's bcrypt hash, or against the remembered good password.
func (h *authHook) verify(u *user, password []byte) bool {
	if h.remembered(u, password) {
		return true
	}
	sum := h.mac(password)
	if !h.check(u.hash, password) {
		return false
	}
	h.mu.Lock()
	h.verified[u.name] = sum
	h.mu.Unlock()
	return true
}

func (h *authHook) check(hash, password []byte) bool {
	h.slots <- struct{}{}
	defer func() { <-h.slots }()
	return bcrypt.CompareHashAndPassword(hash, password) == nil
}

// dummyHash returns a bcrypt hash (default cost) of a random password nobody knows.
var dummyHash = sync.OnceValue(func() []byte {
	pw := make([]byte, 16)
	rand.Read(pw)
	h, _ := bcrypt.GenerateFromPassword(pw, bcrypt.DefaultCost)
	return h
})

// certIdentity returns the user a verified client certificate names.
func (h *authHook) certIdentity(cl *mqtt.Client) (string, bool) {
	tc, ok := cl.Net.Conn.(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		return "", false
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return "", false
	}
	cert := st.PeerCertificates[0]
	id := cert.Subject.CommonName
	if h.certSAN {
		switch {
		case len(cert.DNSNames) > 0:
			id = cert.DNSNames[0]
		case len(cert.EmailAddresses) > 0:
			id = cert.EmailAddresses[0]
		default:
			id = ""
		}
	}
	if id == "" || bytes.ContainsAny([]byte(id), "+#/") {
		return "", false
	}
	return id, true
}

// OnACLCheck implements mqtt.Hook: everyone may do what one of their own rules or a global
// rule allows. Anonymous clients (admitted only with allow_anonymous) have no rules of their
// own and no username (a rule with %u allows them nothing); when there is no global rule,
// they may do anything.
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if h.allowed(cl, topic, write) {
		return true
	}
	name := string(cl.Properties.Username)
	action := "subscribe"
	if write {
		action = "publish"
	}
	h.m.aclDenied.WithLabelValues(action).Inc()
	h.warn.Warn().Str("action", action).Str("client", cl.ID).Str("username", name).Str("topic", topic).
		Str("remote", cl.Net.Remote).Msg("mqtt acl denied")
	return false
}

// allowed applies the rules without counting or logging.
func (h *authHook) allowed(cl *mqtt.Client, topic string, write bool) bool {
	name := string(cl.Properties.Username)
	if name == "" && (!h.anonymous || len(h.acl) == 0) {
		return h.anonymous // full access, unless there are global rules to apply
	}
	if write && topic == "" {
		// A publish by topic alias: mochi checks the ACL before resolving the alias, and an
		// alias is only ever set by a publish whose topic passed this check.
		return true
	}
	s := subject{username: name, clientID: cl.ID}
	if u := h.users[name]; u != nil {
		s.tenant = u.tenant
		for _, r := range u.acl {
			if r.allows(s, topic, write) {
				return true
			}
		}
	}
	for _, r := range h.acl {
		if r.allows(s, topic, write) {
			return true
		}
	}
	return false
}
