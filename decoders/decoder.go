// Package decoders turns the bytes a device sent into readings: built-in Go decoders (json,
// cayenne-lpp, raw), sandboxed JavaScript decoders written for The Things Stack or ChirpStack
// (run unchanged on a goja runtime pool), the device template library, hot reload, and the
// LoRaWAN network-server envelopes. It imports no MQTT, NATS or SQL package. docs/decoders.md
// says what the sandbox guarantees.
package decoders

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-iot/sluice"
)

// Input is what a decoder is given for one uplink.
type Input struct {
	Bytes     []byte
	FPort     int
	RecvTime  time.Time
	Variables map[string]string
	Tenant    string
	Device    string
}

// Output is what a decoder produced for one uplink.
type Output struct {
	// Data is the decoded object, every value numeric or not.
	Data map[string]any
	// Readings are the numeric and boolean values of Data, flattened.
	Readings []sluice.Reading
	Warnings []string
	// Normalized is the normalized payload (The Things Stack schema: air.temperature, …) when
	// the script has a normalizeUplink; one object per measurement. Nil otherwise.
	Normalized []map[string]any
}

// A Decoder turns one uplink's bytes into readings. Decode is safe for concurrent use.
type Decoder interface {
	Name() string
	Decode(ctx context.Context, in *Input) (*Output, error)
}

// DecodeError reports a decoder that failed on one uplink.
type DecodeError struct {
	Decoder string
	Device  string
	// Line and Column locate the failure in a script, when known (1-based; 0 when unknown).
	Line, Column int
	Err          error
}

func (e *DecodeError) Error() string {
	where := ""
	if e.Line > 0 {
		where = fmt.Sprintf(" at %d:%d", e.Line, e.Column)
	}
	return fmt.Sprintf("decoder %s%s, device %s: %v", e.Decoder, where, e.Device, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }
