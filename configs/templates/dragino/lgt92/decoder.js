// Dragino LGT-92 LoRaWAN GPS tracker.
// Written for Sluice from the public LGT-92 user manual: position uplinks on fPort 2, big
// endian, 11 bytes, 15 bytes with roll and pitch (firmware v1.5), or 18 bytes with HDOP and
// altitude too (firmware v1.6 and later):
//   0-3   latitude, int32, 0.000001 °
//   4-7   longitude, int32, 0.000001 °
//   8-9   bit 14 alarm (SOS button), bits 13-0 battery voltage in mV
//   10    bits 7-6 motion mode, bit 5 LED on, bits 4-0 firmware version − 150 (v1.5) or − 160 (v1.6)
//   11-12 roll, int16, 0.01 °
//   13-14 pitch, int16, 0.01 °
//   15    HDOP, uint8, 0.01
//   16-17 altitude, int16, 0.01 m
// A tracker without a GPS fix sends 0 for latitude and longitude.
function int32(b, i) {
  return (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3];
}

function int16(b, i) {
  var v = (b[i] << 8) | b[i + 1];
  return v & 0x8000 ? v - 0x10000 : v;
}

var motionModes = ["disabled", "move", "collide", "user defined"];

function decodeUplink(input) {
  var b = input.bytes;
  if (input.fPort !== 2) {
    return { errors: ["unknown fPort " + input.fPort + ", want 2"] };
  }
  if (b.length !== 11 && b.length !== 15 && b.length !== 18) {
    return { errors: ["payload is " + b.length + " bytes, want 11, 15 or 18"] };
  }
  var data = {};
  var warnings = [];
  var lat = int32(b, 0), lon = int32(b, 4);
  if (lat === 0 && lon === 0) {
    warnings.push("no GPS fix");
  } else {
    data.latitude = lat / 1e6;
    data.longitude = lon / 1e6;
  }
  data.alarm = (b[8] & 0x40) !== 0;
  data.battery_voltage = (((b[8] & 0x3f) << 8) | b[9]) / 1000;
  data.motion_mode = motionModes[b[10] >> 6];
  data.led_on = (b[10] & 0x20) !== 0;
  data.firmware_version = (b.length === 18 ? 160 : 150) + (b[10] & 0x1f);
  if (b.length >= 15) {
    data.roll = int16(b, 11) / 100;
    data.pitch = int16(b, 13) / 100;
  }
  if (b.length === 18) {
    data.hdop = b[15] / 100;
    data.altitude = int16(b, 16) / 100;
  }
  return { data: data, warnings: warnings, errors: [] };
}
