package hooks

import (
	"errors"
	"fmt"
)

// LoRaWANRouteConfig holds the options of a route whose format is chirpstack or ttn.
type LoRaWANRouteConfig struct {
	// DeviceID names the device: dev_eui (default; lower-case hex), name (ChirpStack
	// deviceName, The Things Stack device_id) or id (The Things Stack device_id, else DevEUI).
	DeviceID string `yaml:"device_id"`
	// Prefer decides between a local decoder and the network server's decoded object when
	// both exist: local (default) or network.
	Prefer string `yaml:"prefer"`
	// UnknownDevices is what happens to a device the registry does not list: accept (default:
	// the route's decoder or the network server's object), park (stored on the error subject
	// with reason "parked", for replay once registered) or reject (counted, stored on the
	// error subject with reason "rejected").
	UnknownDevices string `yaml:"unknown_devices"`
	// RadioReadings adds lora.* readings to every uplink: best RSSI and SNR, gateway count,
	// fCnt, spreading factor, frequency.
	RadioReadings bool `yaml:"radio_readings"`
}

// Unknown-device policies.
const (
	PolicyAccept = "accept"
	PolicyPark   = "park"
	PolicyReject = "reject"
)

func (c RouteConfig) validateLoRaWAN() error {
	var errs []error
	l := c.LoRaWAN
	if !c.Format.Valid() {
		return fmt.Errorf("format: %q is not one of raw, chirpstack, ttn", c.Format)
	}
	if !c.Format.Envelope() {
		if l != (LoRaWANRouteConfig{}) {
			errs = append(errs, errors.New("device_id, prefer, unknown_devices, radio_readings: only with format chirpstack or ttn"))
		}
		if c.Decoder == "" {
			errs = append(errs, errors.New("decoder: required with format raw"))
		}
		return errors.Join(errs...)
	}
	switch l.DeviceID {
	case "", "dev_eui", "name", "id":
	default:
		errs = append(errs, fmt.Errorf("device_id: %q is not one of dev_eui, name, id", l.DeviceID))
	}
	switch l.Prefer {
	case "", "local", "network":
	default:
		errs = append(errs, fmt.Errorf("prefer: %q is not one of local, network", l.Prefer))
	}
	switch l.UnknownDevices {
	case "", PolicyAccept, PolicyPark, PolicyReject:
	default:
		errs = append(errs, fmt.Errorf("unknown_devices: %q is not one of accept, park, reject", l.UnknownDevices))
	}
	return errors.Join(errs...)
}

// prefixed splits a joined error into its problems, each prefixed with a key path.
func prefixed(prefix string, err error) []error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, len(list))
	for i, e := range list {
		out[i] = fmt.Errorf("%s%w", prefix, e)
	}
	return out
}
