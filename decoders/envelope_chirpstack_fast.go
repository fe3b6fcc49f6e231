package decoders

// The fast path of ChirpStack event decoding: a jsonReader fills chirpStackEvent exactly as
// encoding/json would, or gives up and leaves the event to encoding/json (see jsonReader).
// FuzzUnwrapMatchesLegacy holds the two to the same results.

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
	r := &jsonReader{b: b}
	ok := r.fields(chirpStackFields, func(i int) (ok bool) {
		switch i {
		case 0:
			ev.DeduplicationID, ok = r.str()
		case 1:
			ev.Time, ok = r.str()
		case 2:
			ev.DeviceInfo = new(chirpStackDeviceInfo)
			ok = ev.DeviceInfo.readFast(r)
		case 3:
			ev.DevAddr, ok = r.str()
		case 4:
			ev.DR, ok = ptr(r.int())
		case 5:
			var v uint64
			v, ok = r.uint(32)
			fcnt := uint32(v)
			ev.FCnt = &fcnt
		case 6:
			ev.FPort, ok = ptr(r.int())
		case 7:
			ev.Data, ok = ptr(r.str())
		case 8:
			r.space()
			start := r.i
			if r.peek() == '{' {
				var v any
				v, ok = r.value()
				ev.object, _ = v.(map[string]any)
			} else {
				ok = r.skip()
			}
			ev.Object = r.b[start:r.i]
		case 9:
			ev.RxInfo = []chirpStackRxInfo{}
			ok = r.array(func() bool {
				var rx chirpStackRxInfo
				ok := r.fields(chirpStackRxFields, func(i int) (ok bool) {
					switch i {
					case 0:
						ok = r.isString() // unused: GatewayID stays ""
					case 1:
						rx.RSSI, ok = ptr(r.float())
					case 2:
						rx.SNR, ok = ptr(r.float())
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
			ev.Margin, ok = ptr(r.int())
		case 12:
			ev.ExternalPowerSource, ok = r.boolean()
		case 13:
			ev.BatteryLevelUnavailable, ok = r.boolean()
		case 14:
			ev.BatteryLevel, ok = ptr(r.float())
		case 15:
			ev.Level, ok = r.str()
		case 16:
			ev.Code, ok = r.str()
		case 17:
			ev.Description, ok = r.str()
		case 18:
			ev.QueueItemID, ok = r.str()
		case 19:
			ev.DownlinkID, ok = r.raw()
		case 20:
			ev.Location = new(locationJSON)
			ok = ev.Location.readFast(r)
		case 21:
			ev.IntegrationName, ok = r.str()
		}
		return ok
	})
	return ok && r.end()
}

var chirpStackDeviceInfoFields = []string{
	"tenantId", "tenantName", "applicationId", "applicationName", "deviceName", "devEui", "tags",
}

func (di *chirpStackDeviceInfo) readFast(r *jsonReader) bool {
	return r.fields(chirpStackDeviceInfoFields, func(i int) (ok bool) {
		switch i {
		case 0:
			di.TenantID, ok = r.str()
		case 1:
			ok = r.isString() // unused: TenantName stays ""
		case 2:
			di.ApplicationID, ok = r.str()
		case 3:
			ok = r.isString() // unused: ApplicationName stays ""
		case 4:
			di.DeviceName, ok = r.str()
		case 5:
			di.DevEUI, ok = r.str()
		case 6:
			di.Tags = map[string]string{}
			ok = r.object(func(key []byte) bool {
				v, ok := r.str()
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

func (tx *chirpStackTxInfo) readFast(r *jsonReader) bool {
	return r.fields(chirpStackTxFields, func(i int) (ok bool) {
		if i == 0 {
			tx.Frequency, ok = r.uint(64)
			return ok
		}
		return r.fields(chirpStackModulationFields, func(int) bool {
			l := new(chirpStackLoRa)
			tx.Modulation.LoRa = l
			return r.fields(chirpStackLoRaFields, func(i int) (ok bool) {
				if i == 0 {
					l.Bandwidth, ok = r.int()
				} else {
					l.SpreadingFactor, ok = r.int()
				}
				return ok
			})
		})
	})
}

var locationFields = []string{"latitude", "longitude", "altitude", "accuracy"}

func (l *locationJSON) readFast(r *jsonReader) bool {
	return r.fields(locationFields, func(i int) (ok bool) {
		switch i {
		case 0:
			l.Latitude, ok = r.float()
		case 1:
			l.Longitude, ok = r.float()
		case 2:
			l.Altitude, ok = r.float()
		case 3:
			l.Accuracy, ok = ptr(r.float())
		}
		return ok
	})
}

// ptr is a pointer to v, for the optional members encoding/json decodes into pointers.
func ptr[T any](v T, ok bool) (*T, bool) { return &v, ok }
