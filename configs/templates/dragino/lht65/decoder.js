// Dragino LHT65 temperature and humidity sensor with an optional external sensor.
// Written for Sluice from the public LHT65 user manual (payload v1.8): uplinks on fPort 2,
// 11 bytes, big endian:
//   0-1  battery: bits 15-14 status, bits 13-0 voltage in mV
//   2-3  built-in SHT20 temperature, int16, 0.01 °C
//   4-5  built-in SHT20 relative humidity, uint16, 0.1 %
//   6    external sensor type (bit 7 is a flag of the E4 interrupt mode)
//   7-10 external sensor value, by type
function int16(hi, lo) {
  var v = (hi << 8) | lo;
  return v & 0x8000 ? v - 0x10000 : v;
}

var batteryStatus = ["ultra low", "low", "ok", "good"];

function decodeUplink(input) {
  var b = input.bytes;
  if (input.fPort !== 2) {
    return { errors: ["unknown fPort " + input.fPort + ", want 2"] };
  }
  if (b.length < 11) {
    return { errors: ["payload is " + b.length + " bytes, want 11"] };
  }
  var data = {
    battery_voltage: (((b[0] << 8) | b[1]) & 0x3fff) / 1000,
    battery_status: batteryStatus[b[0] >> 6],
    temperature: int16(b[2], b[3]) / 100,
    humidity: ((b[4] << 8) | b[5]) / 10
  };
  var warnings = [];
  var ext = b[6] & 0x7f;
  switch (ext) {
    case 0:
      data.ext_sensor = "none";
      break;
    case 1:
      data.ext_sensor = "temperature";
      var t = int16(b[7], b[8]);
      if (t === 0x7fff) {
        warnings.push("external temperature probe not connected");
      } else {
        data.ext_temperature = t / 100;
      }
      break;
    case 4:
      data.ext_sensor = "interrupt";
      data.ext_pin_high = b[7] === 1;
      data.ext_triggered = b[8] === 1;
      break;
    case 5:
      data.ext_sensor = "illumination";
      data.ext_illuminance = (b[7] << 8) | b[8];
      break;
    case 6:
      data.ext_sensor = "adc";
      data.ext_adc_voltage = ((b[7] << 8) | b[8]) / 1000;
      break;
    case 7:
      data.ext_sensor = "counter";
      data.ext_count = (b[7] << 8) | b[8];
      break;
    default:
      data.ext_sensor = "unknown";
      warnings.push("unknown external sensor type " + ext);
  }
  return { data: data, warnings: warnings, errors: [] };
}
