package broker_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/sluice-iot/sluice/broker"
	"github.com/sluice-iot/sluice/internal/mqtttest"
)

func TestPasswordLogin(t *testing.T) {
	b := start(t, authConfig(t))
	addr := b.Addrs()[0]
	url := "tcp://" + addr

	if _, err := connect3(t, url, "ok-3", "dev-1", "secret-dev-1", nil); err != nil {
		t.Errorf("MQTT 3.1.1, right password: %v", err)
	}
	if c, err := mqtttest.Dial5(t, addr, mqtttest.Options5{ID: "ok-5", Username: "dev-2", Password: "secret-dev-2"}); err != nil {
		t.Errorf("MQTT 5, right password: %v (connack %+v)", err, c.Connack)
	}
	for _, tc := range []struct{ name, user, password string }{
		{"wrong password", "dev-1", "secret-dev-2"},
		{"unknown user", "nobody", "secret-dev-1"},
		{"no credentials", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := connect3(t, url, "bad-3", tc.user, tc.password, nil)
			// mochi answers MQTT 3.1.1 clients with return code 5, not authorized.
			if !containsErr(err, "not Authorized") {
				t.Errorf("MQTT 3.1.1: got %v, want the CONNACK refusal 'not Authorized' (return code 5)", err)
			}
			c, err := mqtttest.Dial5(t, addr, mqtttest.Options5{ID: "bad-5", Username: tc.user, Password: tc.password})
			if err == nil || c.Connack == nil || c.Connack.ReasonCode != 0x86 {
				t.Errorf("MQTT 5: got %v (connack %+v), want CONNACK reason 0x86 bad user name or password", err, c.Connack)
			}
			host, port, _ := strings.Cut(addr, ":")
			args := []string{"-h", host, "-p", port, "-t", "sensors/dev-1/up", "-m", "{}", "-q", "1", "-i", "bad-mosq"}
			if tc.user != "" {
				args = append(args, "-u", tc.user, "-P", tc.password)
			}
			out, err := exec.Command("mosquitto_pub", args...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), "Connection Refused: not authorised.") {
				t.Errorf("mosquitto_pub: got %v: %s, want 'Connection Refused: not authorised.'", err, out)
			}
		})
	}
	for reason, want := range map[string]float64{"bad_password": 3, "unknown_user": 3, "no_credentials": 3} {
		if got := b.counter(t, "sluice_broker_auth_failures_total", "reason", reason); got != want {
			t.Errorf("sluice_broker_auth_failures_total{reason=%q}: got %v, want %v", reason, got, want)
		}
	}
	if got := b.counter(t, "sluice_broker_logins_total", "method", "password"); got != 2 {
		t.Errorf("sluice_broker_logins_total{method=password}: got %v, want 2", got)
	}
}

func TestPlaintextPasswordsRejected(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "users.yaml")
	if err := os.WriteFile(file, []byte("users:\n  - username: gw-1\n    password_hash: hunter2\n  - username: gw-2\n    password: hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := broker.DefaultConfig()
	cfg.Auth.Users = []broker.UserConfig{
		{Username: "dev-1", Password: "hunter2"},
		{Username: "dev-2", PasswordHash: "hunter2"},
		{Username: "dev-3", PasswordHash: hash(t, "fine")},
	}
	cfg.Auth.UsersFile = file
	err := cfg.Validate()
	for _, want := range []string{
		"auth.users[0].password: plaintext passwords are not accepted; replace it with password_hash, printed by 'sluice passwd'",
		"auth.users[1].password_hash: not a bcrypt hash (plaintext passwords are not accepted; make one with 'sluice passwd')",
		"auth.users_file: " + file + ": users[0].password_hash: not a bcrypt hash",
		"auth.users_file: " + file + ": users[1].password: plaintext passwords are not accepted",
	} {
		if !containsErr(err, want) {
			t.Errorf("Validate: got %v\nwant a problem containing %q", err, want)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 4 {
		t.Errorf("Validate: got %d problems, want 4:\n%v", n, err)
	}
}

func TestUsersFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "users.yaml")
	body := fmt.Sprintf("users:\n  - username: gw-1\n    password_hash: %q\n    tenant: acme\n", hash(t, "gw-secret"))
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := broker.DefaultConfig()
	cfg.Listeners[0].Address = "127.0.0.1:0"
	cfg.AllowAnonymous = false
	cfg.Auth.UsersFile = file
	cfg.Auth.ACL = []broker.ACLRule{{Topic: "tenants/%t/+/up", Access: "publish"}}
	b := start(t, cfg)
	addr := b.Addrs()[0]
	c, err := mqtttest.Dial5(t, addr, mqtttest.Options5{ID: "gw-1", Username: "gw-1", Password: "gw-secret"})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for topic, want := range map[string]byte{"tenants/acme/dev-9/up": 0x00, "tenants/other/dev-9/up": 0x87} {
		resp, _ := c.Publish(ctx, &paho5.Publish{Topic: topic, QoS: 1, Payload: []byte("{}")})
		if resp == nil || resp.ReasonCode != want {
			t.Errorf("publish to %s: got %+v, want reason 0x%02x", topic, resp, want)
		}
	}
}

// A device may publish only under its own topic: the other device's topic is refused on MQTT
// 3.1.1 (QoS 1: disconnected; QoS 0: dropped) and MQTT 5 (PUBACK 0x87), and a subscriber
// allowed to see everything receives only the allowed messages.
func TestACLPublishOwnTopicOnly(t *testing.T) {
	b := start(t, authConfig(t))
	addr := b.Addrs()[0]
	url := "tcp://" + addr

	var seen collector
	mon, err := connect3(t, url, "monitor", "monitor", "secret-monitor", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok := mon.Subscribe("sensors/#", 1, seen.handler); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("monitor subscribe: %v", tok.Error())
	}

	// MQTT 3.1.1
	lost := make(chan error, 1)
	opts := paho.NewClientOptions().AddBroker(url).SetClientID("dev-1-v3").SetUsername("dev-1").SetPassword("secret-dev-1").
		SetAutoReconnect(false).SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	d3 := paho.NewClient(opts)
	if tok := d3.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("dev-1 connect: %v", tok.Error())
	}
	defer d3.Disconnect(50)
	if tok := d3.Publish("sensors/dev-1/up", 1, false, "v3 own"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish own topic: %v", tok.Error())
	}
	d3.Publish("sensors/dev-2/up", 0, false, "v3 qos0 other").WaitTimeout(5 * time.Second)
	d3.Publish("sensors/dev-2/up", 1, false, "v3 qos1 other")
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("MQTT 3.1.1 client publishing QoS 1 to another device's topic was not disconnected")
	}

	// MQTT 5
	d5, err := mqtttest.Dial5(t, addr, mqtttest.Options5{ID: "dev-1-v5", Username: "dev-1", Password: "secret-dev-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, _ := d5.Publish(ctx, &paho5.Publish{Topic: "sensors/dev-2/up", QoS: 1, Payload: []byte("v5 other")})
	if resp == nil || resp.ReasonCode != 0x87 {
		t.Errorf("MQTT 5 publish to another device's topic: got %+v, want PUBACK reason 0x87 not authorized", resp)
	}
	if resp, err := d5.Publish(ctx, &paho5.Publish{Topic: "sensors/dev-1/up", QoS: 1, Payload: []byte("v5 own")}); err != nil || resp.ReasonCode != 0 {
		t.Errorf("MQTT 5 publish to own topic after a refusal: %v %+v", err, resp)
	}

	// Subscriptions beyond the ACL fail per filter.
	sa, _ := d5.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "sensors/#", QoS: 1}}})
	if sa == nil || len(sa.Reasons) != 1 || sa.Reasons[0] != 0x87 {
		t.Errorf("MQTT 5 subscribe beyond the ACL: got %+v, want SUBACK 0x87", sa)
	}
	d3b, err := connect3(t, url, "dev-1-v3b", "dev-1", "secret-dev-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := d3b.Subscribe("sensors/#", 1, nil)
	tok.WaitTimeout(5 * time.Second)
	if st, ok := tok.(*paho.SubscribeToken); !ok || st.Result()["sensors/#"] != 0x80 {
		t.Errorf("MQTT 3.1.1 subscribe beyond the ACL: got %v (%v), want SUBACK return code 0x80", tok.(*paho.SubscribeToken).Result(), tok.Error())
	}

	// A marker published after everything else: the monitor's messages arrive in the order
	// the broker took them, so a refused message that leaked would be there before it.
	if resp, err := d5.Publish(ctx, &paho5.Publish{Topic: "sensors/dev-1/up", QoS: 1, Payload: []byte("marker")}); err != nil || resp.ReasonCode != 0 {
		t.Fatalf("marker: %v %+v", err, resp)
	}
	mqtttest.WaitFor(t, 10*time.Second, "the marker", func() bool {
		l := seen.list()
		return len(l) > 0 && l[len(l)-1] == "sensors/dev-1/up marker"
	})
	got := seen.list()
	sort.Strings(got)
	want := []string{"sensors/dev-1/up marker", "sensors/dev-1/up v3 own", "sensors/dev-1/up v5 own"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("monitor received %q, want %q", got, want)
	}
	// The client sees its connection close before the broker's disconnect hook counts it.
	mqtttest.WaitFor(t, 10*time.Second, "the refused client's disconnect to be counted", func() bool {
		return b.counter(t, "sluice_broker_disconnects_total", "reason", "not_authorized") >= 1
	})
	if got := b.counter(t, "sluice_broker_disconnects_total", "reason", "not_authorized"); got != 1 {
		t.Errorf("sluice_broker_disconnects_total{reason=not_authorized}: got %v, want 1", got)
	}
	for action, want := range map[string]float64{"publish": 3, "subscribe": 2} {
		if got := b.counter(t, "sluice_broker_acl_denied_total", "action", action); got != want {
			t.Errorf("sluice_broker_acl_denied_total{action=%q}: got %v, want %v", action, got, want)
		}
	}
}

// mosquitto_sub: a subscription beyond the ACL is denied; one inside it receives.
func TestMosquittoSubACL(t *testing.T) {
	b := start(t, authConfig(t))
	host, port, _ := strings.Cut(b.Addrs()[0], ":")
	out, err := exec.Command("mosquitto_sub", "-h", host, "-p", port, "-u", "dev-1", "-P", "secret-dev-1",
		"-t", "sensors/#", "-C", "1", "-W", "5").CombinedOutput()
	if !strings.Contains(string(out), "All subscription requests were denied.") {
		t.Errorf("mosquitto_sub beyond the ACL: got %v: %q, want 'All subscription requests were denied.'", err, out)
	}
	sub := exec.Command("mosquitto_sub", "-h", host, "-p", port, "-u", "monitor", "-P", "secret-monitor",
		"-t", "sensors/#", "-C", "1", "-W", "10", "-q", "1")
	var got strings.Builder
	sub.Stdout = &got
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	// The message is retained: mosquitto_sub receives it whether it subscribes before or after.
	pub, err := connect3(t, "tcp://"+b.Addrs()[0], "dev-2", "dev-2", "secret-dev-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	pub.Publish("sensors/dev-2/up", 1, true, "hello").WaitTimeout(5 * time.Second)
	if err := sub.Wait(); err != nil || got.String() != "hello\n" {
		t.Errorf("mosquitto_sub inside the ACL: got %v, %q, want \"hello\"", err, got.String())
	}
}

// A will is published by the broker for the client: a will topic outside the client's ACL
// refuses the login.
func TestWillTopicACL(t *testing.T) {
	b := start(t, authConfig(t))
	url := "tcp://" + b.Addrs()[0]
	for topic, wantOK := range map[string]bool{"sensors/dev-1/up": true, "sensors/dev-2/up": false} {
		opts := paho.NewClientOptions().AddBroker(url).SetClientID("will-"+topic).SetUsername("dev-1").SetPassword("secret-dev-1").
			SetAutoReconnect(false).SetProtocolVersion(4).SetWill(topic, "gone", 1, false)
		cl := paho.NewClient(opts)
		tok := cl.Connect()
		tok.WaitTimeout(10 * time.Second)
		if wantOK && tok.Error() != nil {
			t.Errorf("will on %s: %v", topic, tok.Error())
		}
		if !wantOK && !containsErr(tok.Error(), "not Authorized") {
			t.Errorf("will on %s: got %v, want not Authorized", topic, tok.Error())
		}
		cl.Disconnect(50)
	}
	if got := b.counter(t, "sluice_broker_auth_failures_total", "reason", "will_not_authorized"); got != 1 {
		t.Errorf("sluice_broker_auth_failures_total{reason=will_not_authorized}: got %v, want 1", got)
	}
}

// One user cannot take over another user's session by connecting with its client id; the
// same user can (a reconnecting device), and a client id is free again once its session ends.
func TestClientIDTakeover(t *testing.T) {
	b := start(t, authConfig(t))
	url := "tcp://" + b.Addrs()[0]
	first, err := connect3(t, url, "shared-id", "dev-1", "secret-dev-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := connect3(t, url, "shared-id", "dev-2", "secret-dev-2", nil); !containsErr(err, "not Authorized") {
		t.Errorf("dev-2 taking dev-1's client id: got %v, want not Authorized", err)
	}
	if !first.IsConnected() {
		t.Error("dev-1 was disconnected by another user's attempt")
	}
	again, err := connect3(t, url, "shared-id", "dev-1", "secret-dev-1", nil)
	if err != nil {
		t.Fatalf("dev-1 reconnecting with its client id: %v", err)
	}
	again.Disconnect(50)
	mqtttest.WaitFor(t, 10*time.Second, "dev-1's session to end", func() bool { return b.Clients() == 0 })
	if _, err := connect3(t, url, "shared-id", "dev-2", "secret-dev-2", nil); err != nil {
		t.Errorf("dev-2 using the client id after dev-1's clean session ended: %v", err)
	}
	if got := b.counter(t, "sluice_broker_auth_failures_total", "reason", "client_id_taken"); got != 1 {
		t.Errorf("sluice_broker_auth_failures_total{reason=client_id_taken}: got %v, want 1", got)
	}
}
