package broker

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// LoginThrottleConfig bounds password guessing, which bcrypt alone limits only to a few tries
// per second and core. Each client address (an IPv6 address by its /64) and each username has
// a budget of failed logins that refills over time; a login from an address, or for a user,
// whose budget is spent is refused without checking its password (counted as reason
// "throttled"). A password already verified since start-up is never throttled, so devices
// that were connected keep reconnecting while someone guesses at their username.
type LoginThrottleConfig struct {
	// Burst is how many failed logins in a row an address or a username may have before it
	// must wait; 0 disables the throttle.
	Burst int `yaml:"burst"`
	// Interval is how long it takes to earn back one attempt.
	Interval time.Duration `yaml:"interval"`
}

// DefaultLoginThrottleConfig allows 10 failures in a row, then one every 6 seconds.
func DefaultLoginThrottleConfig() LoginThrottleConfig {
	return LoginThrottleConfig{Burst: 10, Interval: 6 * time.Second}
}

// Validate reports every problem, each prefixed with its key.
func (c LoginThrottleConfig) Validate() error {
	var errs []error
	if c.Burst < 0 {
		errs = append(errs, errors.New("burst: must not be negative (0 disables the throttle)"))
	}
	if c.Burst > 0 && c.Interval <= 0 {
		errs = append(errs, errors.New("interval: must be positive"))
	}
	return errors.Join(errs...)
}

// maxThrottleKeys bounds the addresses and usernames the throttle remembers: beyond, those
// whose budget has refilled are forgotten first, then any.
const maxThrottleKeys = 65536

// throttle is the failed-login budget of each address and username. It is safe for
// concurrent use.
type throttle struct {
	burst    float64
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	keys map[string]*budget
}

type budget struct {
	left float64 // attempts left
	at   time.Time
}

func newThrottle(cfg LoginThrottleConfig) *throttle {
	if cfg.Burst == 0 {
		return nil
	}
	return &throttle{burst: float64(cfg.Burst), interval: cfg.Interval, now: time.Now, keys: map[string]*budget{}}
}

// throttleKeys returns the keys of a login: its address (IPv6 by /64) and its username.
func throttleKeys(remote, username string) [2]string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		if a.Is6() {
			p, _ := a.Prefix(64)
			host = p.String()
		} else {
			host = a.String()
		}
	}
	return [2]string{"a " + host, "u " + username}
}

// allow reports whether every key has an attempt left. A nil throttle allows everything.
func (t *throttle) allow(keys [2]string) bool {
	if t == nil {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, k := range keys {
		if b := t.keys[k]; b != nil && t.refill(b, now) < 1 {
			return false
		}
	}
	return true
}

// failed spends one attempt of every key.
func (t *throttle) failed(keys [2]string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, k := range keys {
		b := t.keys[k]
		if b == nil {
			if len(t.keys) >= maxThrottleKeys {
				t.evict(now)
			}
			b = &budget{left: t.burst, at: now}
			t.keys[k] = b
		}
		t.refill(b, now)
		b.left = max(b.left-1, 0)
	}
}

func (t *throttle) refill(b *budget, now time.Time) float64 {
	if d := now.Sub(b.at); d > 0 {
		b.left = min(t.burst, b.left+float64(d)/float64(t.interval))
		b.at = now
	}
	return b.left
}

// evict forgets the keys whose budget is whole again, or, when none is, one key.
func (t *throttle) evict(now time.Time) {
	for k, b := range t.keys {
		if t.refill(b, now) >= t.burst {
			delete(t.keys, k)
		}
	}
	for k := range t.keys {
		if len(t.keys) < maxThrottleKeys {
			break
		}
		delete(t.keys, k)
	}
}
