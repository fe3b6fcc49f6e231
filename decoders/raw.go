package decoders

import (
	"context"
	"encoding/base64"
	"encoding/hex"

	"github.com/sluice-iot/sluice"
)

// Raw is the built-in decoder "raw": it keeps the bytes, as hex and base64, and makes no
// readings, for devices whose payload is decoded downstream.
type Raw struct{}

// Name implements Decoder.
func (Raw) Name() string { return "raw" }

// Decode implements Decoder.
func (Raw) Decode(_ context.Context, in *Input) (*Output, error) {
	return &Output{Data: map[string]any{
		"hex":    hex.EncodeToString(in.Bytes),
		"base64": base64.StdEncoding.EncodeToString(in.Bytes),
		"size":   float64(len(in.Bytes)),
	}, Readings: []sluice.Reading{}}, nil
}
