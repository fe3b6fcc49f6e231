package decoders

// The ChirpStack unwrapping as it was before it decoded the object in the same pass as the event:
// the oracle TestUnwrapMatchesLegacy and FuzzUnwrapMatchesLegacy compare Unwrap with.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// legacyChirpStackEvent is the union of the ChirpStack v4 integration events (integration.proto,
// protobuf-JSON: camelCase, defaults omitted), as far as Sluice reads them.
type legacyChirpStackEvent struct {
	DeduplicationID string `json:"deduplicationId"`
	Time            string `json:"time"`
	DeviceInfo      *struct {
		TenantID        string            `json:"tenantId"`
		TenantName      string            `json:"tenantName"`
		ApplicationID   string            `json:"applicationId"`
		ApplicationName string            `json:"applicationName"`
		DeviceName      string            `json:"deviceName"`
		DevEUI          string            `json:"devEui"`
		Tags            map[string]string `json:"tags"`
	} `json:"deviceInfo"`
	DevAddr string          `json:"devAddr"`
	DR      *int            `json:"dr"`
	FCnt    *uint32         `json:"fCnt"`
	FPort   *int            `json:"fPort"`
	Data    *string         `json:"data"`
	Object  json.RawMessage `json:"object"`
	RxInfo  []struct {
		GatewayID string   `json:"gatewayId"`
		RSSI      *float64 `json:"rssi"`
		SNR       *float64 `json:"snr"`
	} `json:"rxInfo"`
	TxInfo *struct {
		Frequency  uint64 `json:"frequency"`
		Modulation struct {
			LoRa *struct {
				Bandwidth       int `json:"bandwidth"`
				SpreadingFactor int `json:"spreadingFactor"`
			} `json:"lora"`
		} `json:"modulation"`
	} `json:"txInfo"`

	// status
	Margin                  *int     `json:"margin"`
	ExternalPowerSource     bool     `json:"externalPowerSource"`
	BatteryLevelUnavailable bool     `json:"batteryLevelUnavailable"`
	BatteryLevel            *float64 `json:"batteryLevel"`
	// the other kinds, recognised by their fields when the topic does not say
	Level           string          `json:"level"`
	Code            string          `json:"code"`
	Description     string          `json:"description"`
	QueueItemID     string          `json:"queueItemId"`
	DownlinkID      json.RawMessage `json:"downlinkId"`
	Location        *locationJSON   `json:"location"`
	IntegrationName string          `json:"integrationName"`
}

func legacyUnwrapChirpStack(topic string, payload []byte) (*Envelope, error) {
	var ev legacyChirpStackEvent
	if err := legacyDecodeEvent(payload, &ev); err != nil {
		return nil, err
	}
	env := &Envelope{Kind: legacyChirpStackKind(topic, &ev), ID: ev.DeduplicationID}
	if di := ev.DeviceInfo; di != nil {
		env.DevEUI = strings.ToLower(di.DevEUI)
		env.DeviceName = di.DeviceName
		env.Tenant = di.TenantID
		env.Application = di.ApplicationID
		env.Tags = di.Tags
	}
	if ev.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, ev.Time)
		if err != nil {
			return nil, fmt.Errorf("time: %q is not an RFC 3339 time", ev.Time)
		}
		env.Time = t.UTC()
	}
	switch env.Kind {
	case KindUp:
		if env.DevEUI == "" {
			return nil, errors.New("up event has no deviceInfo.devEui")
		}
		fcnt, fport := uint32(0), 0 // protobuf-JSON omits zero values
		if ev.FCnt != nil {
			fcnt = *ev.FCnt
		}
		if ev.FPort != nil {
			fport = *ev.FPort
		}
		env.FCnt, env.FPort = &fcnt, &fport
		if ev.Data != nil {
			b, err := base64.StdEncoding.DecodeString(*ev.Data)
			if err != nil {
				return nil, fmt.Errorf("data: not base64: %v", err)
			}
			env.Payload = b
		}
		obj, err := legacyObjectField("object", ev.Object)
		if err != nil {
			return nil, err
		}
		env.Object = obj
		r := &Radio{Gateways: len(ev.RxInfo), DataRate: ev.DR}
		for _, rx := range ev.RxInfo {
			r.best(rx.RSSI, rx.SNR)
		}
		if tx := ev.TxInfo; tx != nil {
			r.Frequency = tx.Frequency
			if l := tx.Modulation.LoRa; l != nil {
				r.SpreadingFactor, r.Bandwidth = l.SpreadingFactor, l.Bandwidth
			}
		}
		env.Radio = r
	case KindStatus:
		if env.DevEUI == "" {
			return nil, errors.New("status event has no deviceInfo.devEui")
		}
		s := &DeviceStatus{ExternalPower: ev.ExternalPowerSource, BatteryUnavailable: ev.BatteryLevelUnavailable}
		if ev.Margin != nil {
			s.Margin = *ev.Margin
		}
		if ev.BatteryLevel != nil {
			s.Battery = *ev.BatteryLevel
		}
		env.Status = s
	case KindLocation:
		if env.DevEUI == "" || ev.Location == nil {
			return nil, errors.New("location event has no deviceInfo.devEui or no location")
		}
		env.Location = ev.Location.location()
	}
	return env, nil
}

// chirpStackKind takes the event type from the topic's "event/<type>" levels (ChirpStack's
// default topic template), else from the fields only that type has.
func legacyChirpStackKind(topic string, ev *legacyChirpStackEvent) string {
	levels := strings.Split(topic, "/")
	if n := len(levels); n >= 2 && levels[n-2] == "event" {
		if k, ok := chirpStackKinds[levels[n-1]]; ok {
			return k
		}
		return KindOther
	}
	switch {
	case ev.IntegrationName != "": // carries an object too
		return KindIntegration
	case ev.RxInfo != nil || ev.TxInfo != nil || ev.Data != nil || ev.FCnt != nil || ev.FPort != nil || ev.Object != nil:
		return KindUp
	case ev.Margin != nil || ev.BatteryLevel != nil || ev.ExternalPowerSource || ev.BatteryLevelUnavailable:
		return KindStatus
	case ev.DownlinkID != nil:
		return KindTxAck
	case ev.QueueItemID != "":
		return KindAck
	case ev.Level != "" || ev.Code != "" || ev.Description != "":
		return KindLog
	case ev.Location != nil:
		return KindLocation
	case ev.DevAddr != "":
		return KindJoin
	}
	return KindOther
}

// legacyDecodeEvent parses a JSON object event.
func legacyDecodeEvent(payload []byte, v any) error {
	b := bytes.TrimSpace(payload)
	if len(b) == 0 {
		return errors.New("empty payload, want a JSON object")
	}
	if b[0] != '{' {
		return fmt.Errorf("payload is not a JSON object (starts with %q)", b[0])
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	return nil
}

// legacyObjectField reads an optional decoded object: absent or null is nil, anything but an object
// is an error naming the field.
func legacyObjectField(name string, raw json.RawMessage) (map[string]any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '{' {
		return nil, fmt.Errorf("%s: want a JSON object, got %.20s", name, raw)
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return obj, nil
}

func legacyUnwrap(f Format, topic string, payload []byte) (*Envelope, error) {
	var env *Envelope
	var err error
	switch f {
	case FormatChirpStack:
		env, err = legacyUnwrapChirpStack(topic, payload)
	case FormatTTN:
		// The Things Stack path never changed: it is its own oracle.
		env, err = unwrapTTN(topic, payload)
	default:
		return nil, &EnvelopeError{Format: f, Err: fmt.Errorf("not an envelope format")}
	}
	if err != nil {
		return nil, &EnvelopeError{Format: f, Err: err}
	}
	env.Format = f
	return env, nil
}
