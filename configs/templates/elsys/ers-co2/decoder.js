// Elsys ERS CO2 indoor climate sensor (and other ERS models sharing the Elsys payload format).
// Written for Sluice from Elsys' public "Elsys payload" specification: a sequence of type
// (1 byte) and value (big endian) items, on any fPort (5 by default):
//   01 temperature int16 0.1 °C   02 humidity uint8 %        03 acceleration 3 × int8
//   04 light uint16 lux           05 motion uint8 count      06 co2 uint16 ppm
//   07 vdd uint16 mV              08 analog1 uint16 mV       0A pulse1 uint16
//   0B pulse1 absolute uint32     0C external temperature    0D external digital uint8
//   0E distance uint16 mm         0F acceleration motion     10 IR temperature (int. + ext.)
//   11 occupancy uint8            12 water leak uint8        14 pressure uint32 0.001 hPa
//   15 sound peak + average uint8
// normalizeUplink maps the values to The Things Stack normalized payload (air.*, battery).
function int16(b, i) {
  var v = (b[i] << 8) | b[i + 1];
  return v & 0x8000 ? v - 0x10000 : v;
}

function uint16(b, i) {
  return (b[i] << 8) | b[i + 1];
}

function uint32(b, i) {
  return b[i] * 0x1000000 + ((b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]);
}

function int8(v) {
  return v & 0x80 ? v - 0x100 : v;
}

var types = {
  0x01: [2, function (d, b, i) { d.temperature = int16(b, i) / 10; }],
  0x02: [1, function (d, b, i) { d.humidity = b[i]; }],
  0x03: [3, function (d, b, i) { d.x = int8(b[i]); d.y = int8(b[i + 1]); d.z = int8(b[i + 2]); }],
  0x04: [2, function (d, b, i) { d.light = uint16(b, i); }],
  0x05: [1, function (d, b, i) { d.motion = b[i]; }],
  0x06: [2, function (d, b, i) { d.co2 = uint16(b, i); }],
  0x07: [2, function (d, b, i) { d.vdd = uint16(b, i); }],
  0x08: [2, function (d, b, i) { d.analog1 = uint16(b, i); }],
  0x0a: [2, function (d, b, i) { d.pulse1 = uint16(b, i); }],
  0x0b: [4, function (d, b, i) { d.pulseAbs = uint32(b, i); }],
  0x0c: [2, function (d, b, i) { d.externalTemperature = int16(b, i) / 10; }],
  0x0d: [1, function (d, b, i) { d.digital = b[i]; }],
  0x0e: [2, function (d, b, i) { d.distance = uint16(b, i); }],
  0x0f: [1, function (d, b, i) { d.accMotion = b[i]; }],
  0x10: [4, function (d, b, i) { d.irInternalTemperature = int16(b, i) / 10; d.irExternalTemperature = int16(b, i + 2) / 10; }],
  0x11: [1, function (d, b, i) { d.occupancy = b[i]; }],
  0x12: [1, function (d, b, i) { d.waterleak = b[i]; }],
  0x14: [4, function (d, b, i) { d.pressure = uint32(b, i) / 1000; }],
  0x15: [2, function (d, b, i) { d.soundPeak = b[i]; d.soundAvg = b[i + 1]; }]
};

function decodeUplink(input) {
  var b = input.bytes;
  var data = {};
  for (var i = 0; i < b.length;) {
    var t = types[b[i]];
    if (!t) {
      return { errors: ["unknown type 0x" + ("0" + b[i].toString(16)).slice(-2) + " at byte " + i] };
    }
    if (i + 1 + t[0] > b.length) {
      return { errors: ["type 0x" + ("0" + b[i].toString(16)).slice(-2) + " needs " + t[0] + " bytes at byte " + (i + 1)] };
    }
    t[1](data, b, i + 1);
    i += 1 + t[0];
  }
  return { data: data, warnings: [], errors: [] };
}

function normalizeUplink(input) {
  var d = input.data;
  var air = {};
  if (d.temperature !== undefined) air.temperature = d.temperature;
  if (d.humidity !== undefined) air.relativeHumidity = d.humidity;
  if (d.co2 !== undefined) air.co2 = d.co2;
  if (d.light !== undefined) air.lightIntensity = d.light;
  if (d.pressure !== undefined) air.pressure = d.pressure;
  var out = { air: air };
  if (d.motion !== undefined) out.action = { motion: { count: d.motion } };
  if (d.vdd !== undefined) out.battery = d.vdd / 1000;
  return { data: out };
}
