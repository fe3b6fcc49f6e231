// Package mqtttest connects real MQTT clients to a broker under test and waits on conditions,
// for tests that talk to Sluice as devices do. It holds no assertions of its own.
package mqtttest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
)

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Connect connects an MQTT 3.1.1 client (github.com/eclipse/paho.mqtt.golang) to addr that does
// not reconnect; the test fails when it cannot. The caller disconnects it.
func Connect(t testing.TB, addr, id string) paho.Client {
	t.Helper()
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetAutoReconnect(false))
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	return cl
}

// Connect5 connects an MQTT 5 client (github.com/eclipse/paho.golang) to addr, disconnected when
// the test ends; the test fails when it cannot.
func Connect5(t testing.TB, addr, id string) *paho5.Client {
	t.Helper()
	c, err := Dial5(t, addr, Options5{ID: id})
	if err != nil || c.Connack.ReasonCode != 0 {
		t.Fatalf("mqtt 5 connect %s: %v", id, err)
	}
	return c.Client
}

// Options5 are what Dial5 connects with.
type Options5 struct {
	ID                 string
	Username, Password string // none when Username is ""
}

// Client5 is an MQTT 5 client and what it received and lost.
type Client5 struct {
	*paho5.Client
	Connack *paho5.Connack // the broker's answer, also when it refused
	// Lost receives the first error of the connection: a client error or the server's
	// DISCONNECT.
	Lost chan error
	mu   sync.Mutex
	got  []string // "topic payload"
}

// Dial5 connects an MQTT 5 client to addr over TCP, disconnected when the test ends. It returns
// the client and the error when the broker refuses it (its Connack says why).
func Dial5(t testing.TB, addr string, o Options5) (*Client5, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &Client5{Lost: make(chan error, 1)}
	c.Client = paho5.NewClient(paho5.ClientConfig{
		ClientID:      o.ID,
		Conn:          conn,
		PacketTimeout: 30 * time.Second,
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){func(pr paho5.PublishReceived) (bool, error) {
			c.mu.Lock()
			c.got = append(c.got, pr.Packet.Topic+" "+string(pr.Packet.Payload))
			c.mu.Unlock()
			return true, nil
		}},
		OnClientError: func(err error) {
			select {
			case c.Lost <- err:
			default:
			}
		},
		OnServerDisconnect: func(d *paho5.Disconnect) {
			select {
			case c.Lost <- fmt.Errorf("server disconnect 0x%02x", d.ReasonCode):
			default:
			}
		},
	})
	cp := &paho5.Connect{ClientID: o.ID, CleanStart: true, KeepAlive: 30}
	if o.Username != "" {
		cp.Username, cp.UsernameFlag = o.Username, true
		cp.Password, cp.PasswordFlag = []byte(o.Password), true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	c.Connack = ca
	if err != nil {
		conn.Close()
		return c, err
	}
	t.Cleanup(func() { c.Disconnect(&paho5.Disconnect{ReasonCode: 0}) })
	return c, nil
}

// Received returns the "topic payload" of every message received so far.
func (c *Client5) Received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

// WaitFor polls cond until it holds; the test fails when timeout passes first.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
