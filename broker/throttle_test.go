package broker_test

import (
	"context"
	"net"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/sluice-iot/sluice/broker"
)

// TestFailedLoginThrottle: after auth.failed_logins.burst wrong passwords, further logins from
// that address, and for that username from anywhere, are refused without a password check
// and counted as throttled; other users elsewhere, and passwords verified before, still log in.
func TestFailedLoginThrottle(t *testing.T) {
	cfg := authConfig(t)
	cfg.Auth.FailedLogins = broker.LoginThrottleConfig{Burst: 3, Interval: time.Hour}
	b := start(t, cfg)
	addr := b.Addrs()[0]

	// dev-1 logged in before the attack: its password is known good.
	if code := loginFrom(t, "127.0.0.1", addr, "dev-1", "secret-dev-1"); code != 0 {
		t.Fatalf("dev-1 before the attack: CONNACK 0x%02x, want 0x00", code)
	}
	for i := 0; i < 3; i++ {
		if code := loginFrom(t, "127.0.0.1", addr, "dev-2", "guess"); code != 0x86 {
			t.Fatalf("guess %d: CONNACK 0x%02x, want 0x86", i, code)
		}
	}
	for _, c := range []struct {
		from, user, password string
		want                 byte
		why                  string
	}{
		{"127.0.0.1", "monitor", "secret-monitor", 0x86, "the address is throttled"},
		{"127.0.0.2", "dev-2", "secret-dev-2", 0x86, "the username is throttled"},
		{"127.0.0.2", "monitor", "secret-monitor", 0x00, "another user from another address"},
		{"127.0.0.1", "dev-1", "secret-dev-1", 0x00, "a password verified before the attack"},
	} {
		if code := loginFrom(t, c.from, addr, c.user, c.password); code != c.want {
			t.Errorf("%s from %s (%s): CONNACK 0x%02x, want 0x%02x", c.user, c.from, c.why, code, c.want)
		}
	}
	if got := b.counter(t, "sluice_broker_auth_failures_total", "reason", "bad_password"); got != 3 {
		t.Errorf("sluice_broker_auth_failures_total{reason=bad_password}: got %v, want 3", got)
	}
	if got := b.counter(t, "sluice_broker_auth_failures_total", "reason", "throttled"); got != 2 {
		t.Errorf("sluice_broker_auth_failures_total{reason=throttled}: got %v, want 2", got)
	}
}

// loginFrom connects an MQTT 5 client from the local address from and returns the CONNACK
// reason code.
func loginFrom(t *testing.T, from, addr, user, password string) byte {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := paho5.NewClient(paho5.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho5.Connect{ClientID: "throttle-" + user, CleanStart: true, KeepAlive: 30,
		Username: user, UsernameFlag: true, Password: []byte(password), PasswordFlag: true})
	if ca == nil {
		t.Fatalf("connect %s from %s: %v", user, from, err)
	}
	if ca.ReasonCode == 0 {
		c.Disconnect(&paho5.Disconnect{})
	}
	return ca.ReasonCode
}
