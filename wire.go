package sluice

import (
	"encoding/json"
	"fmt"
)

// EncodeUplink returns the wire form of u (JSON): version WireVersion when every reading is a
// number, WireVersionTyped otherwise.
func EncodeUplink(u *Uplink) ([]byte, error) {
	u.V = WireVersion
	if u.typed() {
		u.V = WireVersionTyped
	}
	b, err := appendUplink(make([]byte, 0, 384+96*len(u.Readings)+32*len(u.Data)), u)
	if err != nil {
		return nil, fmt.Errorf("encode uplink %q: %w", u.ID, err)
	}
	return b, nil
}

// DecodeUplink parses and validates a wire message.
func DecodeUplink(b []byte) (*Uplink, error) {
	var u Uplink
	if err := decodeUplink(b, &u, false); err != nil {
		return nil, fmt.Errorf("decode uplink: %w", err)
	}
	if err := u.Validate(); err != nil {
		return nil, fmt.Errorf("decode uplink: %w", err)
	}
	return &u, nil
}

// DecodeUplinkForStore is DecodeUplink for a database sink: it reads and validates the same
// message but leaves out what a sink does not store (Data, Suppressed, Warnings, Tags and
// Topic stay empty), which spares building them.
func DecodeUplinkForStore(b []byte) (*Uplink, error) {
	var u Uplink
	if err := decodeUplink(b, &u, true); err != nil {
		return nil, fmt.Errorf("decode uplink: %w", err)
	}
	if err := u.Validate(); err != nil {
		return nil, fmt.Errorf("decode uplink: %w", err)
	}
	return &u, nil
}

// EncodeFailure returns the wire form of f.
func EncodeFailure(f *Failure) ([]byte, error) {
	f.V = WireVersion
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode failure %q: %w", f.ID, err)
	}
	return b, nil
}

// DecodeFailure parses a failure message.
func DecodeFailure(b []byte) (*Failure, error) {
	var f Failure
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("decode failure: %w", err)
	}
	if f.V != WireVersion {
		return nil, fmt.Errorf("decode failure: unsupported wire version %d (want %d)", f.V, WireVersion)
	}
	return &f, nil
}
