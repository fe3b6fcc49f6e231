package broker_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// rawConnect opens a TCP connection and completes an MQTT 3.1.1 CONNECT by hand, so that
// thousands of clients cost the test little.
func rawConnect(addr, id, user, password string, keepAlive uint16) (net.Conn, error) {
	return rawConnectTLS(addr, id, user, password, keepAlive, nil)
}

// rawConnectTLS is rawConnect over TLS when tc is not nil.
func rawConnectTLS(addr, id, user, password string, keepAlive uint16, tc *tls.Config) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		conn = tls.Client(conn, tc)
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: keepAlive, ClientIdentifier: id,
			UsernameFlag: user != "", Username: []byte(user), PasswordFlag: password != "", Password: []byte(password),
		},
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(buf.Bytes()); err != nil {
		conn.Close()
		return nil, err
	}
	ack := make([]byte, 4)
	if _, err := ioReadFull(conn, ack); err != nil {
		conn.Close()
		return nil, fmt.Errorf("read connack: %w", err)
	}
	if ack[0] != packets.Connack<<4 || ack[3] != 0 {
		conn.Close()
		return nil, fmt.Errorf("connack % x", ack)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

func ioReadFull(c net.Conn, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := c.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
