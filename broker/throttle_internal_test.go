package broker

import (
	"testing"
	"time"
)

func TestThrottleKeys(t *testing.T) {
	for _, c := range []struct{ remote, want string }{
		{"192.0.2.7:51000", "a 192.0.2.7"},
		{"[2001:db8:1:2:aaaa::1]:51000", "a 2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9]:1", "a 2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.7]:51000", "a 192.0.2.7"},
		{"pipe", "a pipe"},
	} {
		if got := throttleKeys(c.remote, "dev")[0]; got != c.want {
			t.Errorf("throttleKeys(%q): got %q, want %q", c.remote, got, c.want)
		}
	}
}

// The budget refills one attempt per interval, up to the burst.
func TestThrottleRefill(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := newThrottle(LoginThrottleConfig{Burst: 2, Interval: 10 * time.Second})
	th.now = func() time.Time { return now }
	k := throttleKeys("192.0.2.7:1", "dev")
	steps := []struct {
		advance time.Duration
		fail    bool
		allowed bool
	}{
		{0, true, true}, {0, true, false}, {9 * time.Second, false, false}, {time.Second, false, true},
		{0, true, false}, {time.Hour, false, true}, {0, true, true}, {0, true, false},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		if s.fail {
			th.failed(k)
		}
		if got := th.allow(k); got != s.allowed {
			t.Errorf("step %d: allow = %v, want %v", i, got, s.allowed)
		}
	}
}
