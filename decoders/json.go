package decoders

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/sluice-iot/sluice/internal/jsonscan"
)

// JSON is the built-in decoder for devices that publish a JSON object: its numbers and booleans
// become readings (see Flatten). An optional top-level "time" field, an RFC 3339 string or epoch
// milliseconds, sets the reading time; it is kept in the data but is not itself a reading.
type JSON struct{}

// Name implements Decoder.
func (JSON) Name() string { return "json" }

// Decode implements Decoder.
func (JSON) Decode(_ context.Context, in *Input) (*Output, error) {
	data, err := parseObject(in.Bytes)
	if err != nil {
		return nil, &DecodeError{Decoder: "json", Device: in.Device, Err: err}
	}
	t := in.RecvTime
	if raw, ok := data["time"]; ok {
		if t, err = parseTime(raw); err != nil {
			return nil, &DecodeError{Decoder: "json", Device: in.Device, Err: err}
		}
	}
	readings := Flatten(data, t)
	for i, r := range readings {
		if r.Metric == "time" { // the time field sets the time; it is not a reading
			readings = append(readings[:i], readings[i+1:]...)
			break
		}
	}
	return &Output{Data: data, Readings: readings}, nil
}

func parseObject(b []byte) (map[string]any, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, errors.New("empty payload, want a JSON object")
	}
	if b[0] != '{' {
		return nil, fmt.Errorf("payload is not a JSON object (starts with %q)", b[0])
	}
	// What devices send is nearly always the plain subset (printable ASCII, no escapes, shallow
	// nesting, numbers in range): one pass builds exactly what encoding/json builds. Anything
	// else goes through the guard and encoding/json, which give the result or the error they
	// always gave.
	s := jsonscan.New(b, jsonscan.Plain)
	if v, ok := s.Value(); ok && s.End() {
		return v.(map[string]any), nil
	}
	return decodeObject(b)
}

// decodeObject is parseObject for any JSON object: the guard, then encoding/json.
func decodeObject(b []byte) (map[string]any, error) {
	if err := checkJSON(b); err != nil {
		return nil, err
	}
	var data map[string]any
	if err := json.Unmarshal(b, &data); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return data, nil
}

// parseTime reads a "time" field: an RFC 3339 string or a number of epoch milliseconds.
func parseTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return time.Time{}, fmt.Errorf("field time: %q is not an RFC 3339 time", x)
		}
		return t.UTC(), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 || x > 1e15 {
			return time.Time{}, fmt.Errorf("field time: %v is not epoch milliseconds", x)
		}
		return time.UnixMilli(int64(x)).UTC(), nil
	default:
		return time.Time{}, fmt.Errorf("field time: want an RFC 3339 string or epoch milliseconds, got %T", v)
	}
}
