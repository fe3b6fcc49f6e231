package decoders

// The envelope unwrapping as it was before it decoded the object in the same pass as the event:
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

// legacyTTNMessage is The Things Stack v3 ApplicationUp message in JSON (snake_case, defaults
// omitted), as far as Sluice reads it.
type legacyTTNMessage struct {
	EndDeviceIDs struct {
		DeviceID       string `json:"device_id"`
		ApplicationIDs struct {
			ApplicationID string `json:"application_id"`
		} `json:"application_ids"`
		DevEUI  string `json:"dev_eui"`
		DevAddr string `json:"dev_addr"`
	} `json:"end_device_ids"`
	CorrelationIDs []string `json:"correlation_ids"`
	ReceivedAt     string   `json:"received_at"`
	UplinkMessage  *struct {
		FPort             *int             `json:"f_port"`
		FCnt              *uint32          `json:"f_cnt"`
		FRMPayload        *string          `json:"frm_payload"`
		DecodedPayload    json.RawMessage  `json:"decoded_payload"`
		NormalizedPayload []map[string]any `json:"normalized_payload"`
		RxMetadata        []struct {
			RSSI        *float64 `json:"rssi"`
			ChannelRSSI *float64 `json:"channel_rssi"`
			SNR         *float64 `json:"snr"`
		} `json:"rx_metadata"`
		Settings struct {
			DataRate struct {
				LoRa *struct {
					Bandwidth       int `json:"bandwidth"`
					SpreadingFactor int `json:"spreading_factor"`
				} `json:"lora"`
			} `json:"data_rate"`
			Frequency flexUint `json:"frequency"`
		} `json:"settings"`
		ReceivedAt string `json:"received_at"`
	} `json:"uplink_message"`

	JoinAccept     json.RawMessage `json:"join_accept"`
	DownlinkAck    json.RawMessage `json:"downlink_ack"`
	DownlinkNack   json.RawMessage `json:"downlink_nack"`
	DownlinkSent   json.RawMessage `json:"downlink_sent"`
	DownlinkFailed json.RawMessage `json:"downlink_failed"`
	DownlinkQueued json.RawMessage `json:"downlink_queued"`
	LocationSolved *struct {
		Location *locationJSON `json:"location"`
	} `json:"location_solved"`
	ServiceData      json.RawMessage `json:"service_data"`
	DownlinkInvalid  json.RawMessage `json:"downlink_queue_invalidated"`
	DownlinkReplaced json.RawMessage `json:"downlink_queue_replaced"`
}

func legacyUnwrapTTN(topic string, payload []byte) (*Envelope, error) {
	var m legacyTTNMessage
	if err := legacyDecodeEvent(payload, &m); err != nil {
		return nil, err
	}
	ids := m.EndDeviceIDs
	env := &Envelope{
		Kind:        legacyTTNKind(&m),
		DevEUI:      strings.ToLower(ids.DevEUI),
		DeviceName:  ids.DeviceID,
		DeviceID:    ids.DeviceID,
		Application: ids.ApplicationIDs.ApplicationID,
		Tenant:      ttnTenant(topic),
	}
	for _, c := range m.CorrelationIDs {
		if strings.HasPrefix(c, "as:up:") {
			env.ID = c
			break
		}
	}
	if env.Kind == KindLocation {
		if ids.DeviceID == "" && env.DevEUI == "" || m.LocationSolved.Location == nil {
			return nil, errors.New("location_solved has no end device ids or no location")
		}
		env.Location = m.LocationSolved.Location.location()
		if t, err := time.Parse(time.RFC3339Nano, m.ReceivedAt); err == nil {
			env.Time = t.UTC()
		}
		return env, nil
	}
	if env.Kind != KindUp {
		return env, nil
	}
	up := m.UplinkMessage
	if ids.DeviceID == "" && env.DevEUI == "" {
		return nil, errors.New("uplink has neither end_device_ids.device_id nor end_device_ids.dev_eui")
	}
	received := up.ReceivedAt // the Network Server's time, the same in every copy
	if received == "" {
		received = m.ReceivedAt
	}
	if received != "" {
		t, err := time.Parse(time.RFC3339Nano, received)
		if err != nil {
			return nil, fmt.Errorf("received_at: %q is not an RFC 3339 time", received)
		}
		env.Time = t.UTC()
	}
	fcnt, fport := uint32(0), 0 // omitted when zero
	if up.FCnt != nil {
		fcnt = *up.FCnt
	}
	if up.FPort != nil {
		fport = *up.FPort
	}
	env.FCnt, env.FPort = &fcnt, &fport
	if up.FRMPayload != nil {
		b, err := base64.StdEncoding.DecodeString(*up.FRMPayload)
		if err != nil {
			return nil, fmt.Errorf("uplink_message.frm_payload: not base64: %v", err)
		}
		env.Payload = b
	}
	obj, err := legacyObjectField("uplink_message.decoded_payload", up.DecodedPayload)
	if err != nil {
		return nil, err
	}
	env.Object, env.Normalized = obj, up.NormalizedPayload
	r := &Radio{Gateways: len(up.RxMetadata), Frequency: uint64(up.Settings.Frequency)}
	for _, rx := range up.RxMetadata {
		rssi := rx.RSSI
		if rssi == nil {
			rssi = rx.ChannelRSSI
		}
		r.best(rssi, rx.SNR)
	}
	if l := up.Settings.DataRate.LoRa; l != nil {
		r.SpreadingFactor, r.Bandwidth = l.SpreadingFactor, l.Bandwidth
	}
	env.Radio = r
	return env, nil
}

func legacyTTNKind(m *legacyTTNMessage) string {
	switch {
	case m.UplinkMessage != nil:
		return KindUp
	case m.JoinAccept != nil:
		return KindJoin
	case m.DownlinkAck != nil || m.DownlinkNack != nil:
		return KindAck
	case m.DownlinkSent != nil:
		return KindTxAck
	case m.DownlinkFailed != nil || m.DownlinkQueued != nil || m.DownlinkInvalid != nil || m.DownlinkReplaced != nil:
		return KindDown
	case m.LocationSolved != nil:
		return KindLocation
	case m.ServiceData != nil:
		return KindIntegration
	}
	return KindOther
}

func legacyUnwrap(f Format, topic string, payload []byte) (*Envelope, error) {
	var env *Envelope
	var err error
	switch f {
	case FormatChirpStack:
		env, err = legacyUnwrapChirpStack(topic, payload)
	case FormatTTN:
		env, err = legacyUnwrapTTN(topic, payload)
	default:
		return nil, &EnvelopeError{Format: f, Err: fmt.Errorf("not an envelope format")}
	}
	if err != nil {
		return nil, &EnvelopeError{Format: f, Err: err}
	}
	env.Format = f
	return env, nil
}
