// Dragino LSE01 soil moisture and EC sensor.
// Written for Sluice from the public LSE01 user manual: uplinks on fPort 2, 11 bytes, big endian:
//   0-1   battery voltage in mV (bits 13-0)
//   2-3   external DS18B20 temperature, int16, 0.1 °C (0 when no probe)
//   4-5   soil moisture, uint16, 0.01 %
//   6-7   soil temperature, int16, 0.01 °C
//   8-9   soil conductivity, uint16, µS/cm
//   10    bit 7 mode (0 calibrated values, 1 raw values), bit 4 probe detected, bit 0 interrupt
// normalizeUplink maps the values to The Things Stack normalized payload (soil.*, battery).
function int16(b, i) {
  var v = (b[i] << 8) | b[i + 1];
  return v & 0x8000 ? v - 0x10000 : v;
}

function decodeUplink(input) {
  var b = input.bytes;
  if (input.fPort !== 2) {
    return { errors: ["unknown fPort " + input.fPort + ", want 2"] };
  }
  if (b.length !== 11) {
    return { errors: ["payload is " + b.length + " bytes, want 11"] };
  }
  if (b[10] & 0x80) {
    return { errors: ["raw-value mode (MOD=1) payloads are not decoded; set the device to MOD=0"] };
  }
  var data = {
    battery_voltage: (((b[0] << 8) | b[1]) & 0x3fff) / 1000,
    soil_moisture: ((b[4] << 8) | b[5]) / 100,
    soil_temperature: int16(b, 6) / 100,
    soil_conductivity: (b[8] << 8) | b[9],
    probe_detected: (b[10] & 0x10) !== 0,
    interrupt: (b[10] & 0x01) !== 0
  };
  var ext = int16(b, 2);
  if (ext !== 0) {
    data.ext_temperature = ext / 10;
  }
  var warnings = data.probe_detected ? [] : ["soil probe not detected"];
  return { data: data, warnings: warnings, errors: [] };
}

function normalizeUplink(input) {
  var d = input.data;
  return {
    data: {
      soil: {
        moisture: d.soil_moisture,
        temperature: d.soil_temperature,
        ec: d.soil_conductivity / 1000
      },
      battery: d.battery_voltage
    }
  };
}
