package broker

import (
	"crypto/tls"
	"errors"
	"io"
	"net"

	"github.com/gorilla/websocket"
)

// wsConn carries an MQTT byte stream in binary WebSocket messages. It is a net.Conn: reads
// and writes use the WebSocket framing, deadlines and addresses the underlying connection.
type wsConn struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader // the message being read, nil between messages
}

var errTextMessage = errors.New("websocket: MQTT needs binary messages")

// Read reads the stream across message boundaries.
func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			op, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errTextMessage
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// Write sends p as one binary message.
func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// ConnectionState returns the TLS state of a wss connection (zero for ws), so that a client
// certificate authenticates over WebSocket as it does over TLS.
func (c *wsConn) ConnectionState() tls.ConnectionState {
	if tc, ok := c.Conn.(*tls.Conn); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}
