package decoders

// The fast path of ChirpStack event decoding: a scanner with the Plain policy (jsonscan) fills
// chirpStackEvent exactly as encoding/json would, or gives up and leaves the event to
// encoding/json. FuzzUnwrapMatchesLegacy holds the two to the same results.

import (
	"strconv"

	"github.com/sluice-iot/sluice/internal/jsonscan"
)

// chirpStackFields are the members of a ChirpStack event chirpStackEvent keeps, in the order
// readFast numbers them.
var chirpStackFields = []string{
	"deduplicationId", "time", "deviceInfo", "devAddr", "dr", "fCnt", "fPort", "data", "object",
	"rxInfo", "txInfo", "margin", "externalPowerSource", "batteryLevelUnavailable",
	"batteryLevel", "level", "code", "description", "queueItemId", "downlinkId", "location",
	"integrationName",
}

// readFast fills ev from the event b as encoding/json would, except for the members Sluice does
// not use, which it only type-checks, and ev.object, which it fills with the decoded object;
// false when b needs encoding/json, leaving ev partly filled.
func (ev *chirpStackEvent) readFast(b []byte) bool {
	sc := jsonscan.New(b, jsonscan.Plain)
	r := &sc
	ok := r.Fields(chirpStackFields, func(i int) (ok bool) {
		switch i {
		case 0:
			ev.DeduplicationID, ok = r.Str()
		case 1:
			ev.Time, ok = r.Str()
		case 2:
			ev.DeviceInfo = new(chirpStackDeviceInfo)
			ok = ev.DeviceInfo.readFast(r)
		case 3:
			ev.DevAddr, ok = r.Str()
		case 4:
			ev.DR, ok = ptr(intOf(r))
		case 5:
			var v uint64
			v, ok = r.Uint(32)
			fcnt := uint32(v)
			ev.FCnt = &fcnt
		case 6:
			ev.FPort, ok = ptr(intOf(r))
		case 7:
			ev.Data, ok = ptr(r.Str())
		case 8:
			r.Space()
			start := r.Pos()
			if r.Peek() == '{' {
				var v any
				v, ok = r.Value()
				ev.object, _ = v.(map[string]any)
			} else {
				ok = r.Skip()
			}
			ev.Object = b[start:r.Pos()]
		case 9:
			ev.RxInfo = []chirpStackRxInfo{}
			ok = r.Array(func() bool {
				var rx chirpStackRxInfo
				ok := r.Fields(chirpStackRxFields, func(i int) (ok bool) {
					switch i {
					case 0:
						_, ok = r.Text() // unused: GatewayID stays ""
					case 1:
						rx.RSSI, ok = ptr(r.Float())
					case 2:
						rx.SNR, ok = ptr(r.Float())
					}
					return ok
				})
				ev.RxInfo = append(ev.RxInfo, rx)
				return ok
			})
		case 10:
			ev.TxInfo = new(chirpStackTxInfo)
			ok = ev.TxInfo.readFast(r)
		case 11:
			ev.Margin, ok = ptr(intOf(r))
		case 12:
			ev.ExternalPowerSource, ok = r.Bool()
		case 13:
			ev.BatteryLevelUnavailable, ok = r.Bool()
		case 14:
			ev.BatteryLevel, ok = ptr(r.Float())
		case 15:
			ev.Level, ok = r.Str()
		case 16:
			ev.Code, ok = r.Str()
		case 17:
			ev.Description, ok = r.Str()
		case 18:
			ev.QueueItemID, ok = r.Str()
		case 19:
			ev.DownlinkID, ok = r.Raw()
		case 20:
			ev.Location = new(locationJSON)
			ok = ev.Location.readFast(r)
		case 21:
			ev.IntegrationName, ok = r.Str()
		}
		return ok
	})
	return ok && r.End()
}

var chirpStackDeviceInfoFields = []string{
	"tenantId", "tenantName", "applicationId", "applicationName", "deviceName", "devEui", "tags",
}

func (di *chirpStackDeviceInfo) readFast(r *jsonscan.Scanner) bool {
	return r.Fields(chirpStackDeviceInfoFields, func(i int) (ok bool) {
		switch i {
		case 0:
			di.TenantID, ok = r.Str()
		case 1:
			_, ok = r.Text() // unused: TenantName stays ""
		case 2:
			di.ApplicationID, ok = r.Str()
		case 3:
			_, ok = r.Text() // unused: ApplicationName stays ""
		case 4:
			di.DeviceName, ok = r.Str()
		case 5:
			di.DevEUI, ok = r.Str()
		case 6:
			di.Tags = map[string]string{}
			ok = r.Object(func(key []byte) bool {
				v, ok := r.Str()
				di.Tags[string(key)] = v
				return ok
			})
		}
		return ok
	})
}

var chirpStackRxFields = []string{"gatewayId", "rssi", "snr"}

var (
	chirpStackTxFields         = []string{"frequency", "modulation"}
	chirpStackModulationFields = []string{"lora"}
	chirpStackLoRaFields       = []string{"bandwidth", "spreadingFactor"}
)

func (tx *chirpStackTxInfo) readFast(r *jsonscan.Scanner) bool {
	return r.Fields(chirpStackTxFields, func(i int) (ok bool) {
		if i == 0 {
			tx.Frequency, ok = r.Uint(64)
			return ok
		}
		return r.Fields(chirpStackModulationFields, func(int) bool {
			l := new(chirpStackLoRa)
			tx.Modulation.LoRa = l
			return r.Fields(chirpStackLoRaFields, func(i int) (ok bool) {
				if i == 0 {
					l.Bandwidth, ok = intOf(r)
				} else {
					l.SpreadingFactor, ok = intOf(r)
				}
				return ok
			})
		})
	})
}

var locationFields = []string{"latitude", "longitude", "altitude", "accuracy"}

func (l *locationJSON) readFast(r *jsonscan.Scanner) bool {
	return r.Fields(locationFields, func(i int) (ok bool) {
		switch i {
		case 0:
			l.Latitude, ok = r.Float()
		case 1:
			l.Longitude, ok = r.Float()
		case 2:
			l.Altitude, ok = r.Float()
		case 3:
			l.Accuracy, ok = ptr(r.Float())
		}
		return ok
	})
}

// intOf reads a number as encoding/json reads it into an int.
func intOf(r *jsonscan.Scanner) (int, bool) {
	v, ok := r.Int(strconv.IntSize)
	return int(v), ok
}

// ptr is a pointer to v, for the optional members encoding/json decodes into pointers.
func ptr[T any](v T, ok bool) (*T, bool) { return &v, ok }
