package decoders

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ttnMessage is The Things Stack v3 ApplicationUp message in JSON (snake_case, defaults
// omitted), as far as Sluice reads it.
type ttnMessage struct {
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
		// Locations are the device's positions by source: "user" (set in the registry),
		// "frm-payload" (from the payload formatter), …
		Locations  map[string]*locationJSON `json:"locations"`
		RxMetadata []struct {
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

func unwrapTTN(topic string, payload []byte) (*Envelope, error) {
	var m ttnMessage
	if err := decodeEvent(payload, &m); err != nil {
		return nil, err
	}
	ids := m.EndDeviceIDs
	env := &Envelope{
		Kind:        ttnKind(&m),
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
	obj, err := objectField("uplink_message.decoded_payload", up.DecodedPayload)
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
	for source, l := range up.Locations {
		if l != nil {
			if env.Locations == nil {
				env.Locations = map[string]Location{}
			}
			env.Locations[source] = *l.location()
		}
	}
	return env, nil
}

func ttnKind(m *ttnMessage) string {
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

// ttnTenant is the tenant of a topic v3/<application>@<tenant>/devices/…; "" without one.
func ttnTenant(topic string) string {
	levels := strings.SplitN(topic, "/", 3)
	if len(levels) < 2 || levels[0] != "v3" {
		return ""
	}
	if _, tenant, ok := strings.Cut(levels[1], "@"); ok {
		return tenant
	}
	return ""
}

// flexUint is a uint64 that protobuf-JSON writes as a string ("868100000") and others as a
// number.
type flexUint uint64

func (u *flexUint) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	if s == "" || s == "null" {
		return nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%s is not an unsigned integer", b)
	}
	*u = flexUint(v)
	return nil
}
