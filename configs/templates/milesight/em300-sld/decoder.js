// Milesight EM300-SLD spot leak detector (and EM300-ZLD zone leak detector).
// Written for Sluice from Milesight's public EM300-SLD payload definition: a sequence of
// channel id, channel type and value (little endian), usually on fPort 85.
//   01 75  battery, uint8, %
//   03 67  temperature, int16, 0.1 °C
//   04 68  relative humidity, uint8, 0.5 %
//   05 00  leakage, uint8: 0 normal, 1 leak
//   20 CE  stored record: timestamp (uint32, Unix s), temperature, humidity, leakage
function hexByte(n) {
  return ("0" + n.toString(16)).slice(-2);
}

function u32(v, i) {
  return (v[i] | (v[i + 1] << 8) | (v[i + 2] << 16)) + v[i + 3] * 0x1000000;
}

function i16(v, i) {
  var x = v[i] | (v[i + 1] << 8);
  return x & 0x8000 ? x - 0x10000 : x;
}

var sizes = { "0175": 1, "0367": 2, "0468": 1, "0500": 1, "20ce": 8 };

function decodeUplink(input) {
  var b = input.bytes;
  var data = {};
  var i = 0;
  while (i < b.length) {
    if (i + 2 > b.length) {
      return { errors: ["truncated channel header at byte " + i] };
    }
    var key = hexByte(b[i]) + hexByte(b[i + 1]);
    var size = sizes[key];
    if (size === undefined) {
      return { errors: ["unknown channel " + hexByte(b[i]) + " " + hexByte(b[i + 1]) + " at byte " + i] };
    }
    if (i + 2 + size > b.length) {
      return { errors: ["channel " + hexByte(b[i]) + " " + hexByte(b[i + 1]) + " needs " + size + " bytes at byte " + (i + 2)] };
    }
    var v = b.slice(i + 2, i + 2 + size);
    i += 2 + size;
    switch (key) {
      case "0175": data.battery = v[0]; break;
      case "0367": data.temperature = i16(v, 0) / 10; break;
      case "0468": data.humidity = v[0] / 2; break;
      case "0500": data.leak = v[0] === 1; break;
      case "20ce":
        data.history = data.history || [];
        data.history.push({
          timestamp: u32(v, 0),
          temperature: i16(v, 4) / 10,
          humidity: v[6] / 2,
          leak: v[7] === 1
        });
        break;
    }
  }
  return { data: data, warnings: [], errors: [] };
}
