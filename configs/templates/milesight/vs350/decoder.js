// Milesight VS350 passage people counter.
// Written for Sluice from Milesight's public VS350 payload definition: a sequence of channel
// id, channel type and value (little endian), usually on fPort 85.
//   01 75  battery, uint8, %
//   03 67  temperature, int16, 0.1 °C
//   04 CC  total in, total out since the last reset, uint16 each
//   05 CC  in, out during the last reporting period, uint16 each
//   83 67  temperature alarm: temperature, alarm kind
//   84 CC  total counts alarm: total in, total out, alarm
//   85 CC  period counts alarm: period in, period out, alarm
//   20 CE  stored record: timestamp, kind (0 period only, 1 with totals), period in/out, [totals]
function hexByte(n) {
  return ("0" + n.toString(16)).slice(-2);
}

function u16(v, i) {
  return v[i] | (v[i + 1] << 8);
}

function i16(v, i) {
  var x = u16(v, i);
  return x & 0x8000 ? x - 0x10000 : x;
}

function u32(v, i) {
  return (v[i] | (v[i + 1] << 8) | (v[i + 2] << 16)) + v[i + 3] * 0x1000000;
}

var temperatureAlarms = {
  0: "threshold alarm release",
  1: "threshold alarm",
  3: "high temperature alarm",
  4: "high temperature alarm release"
};

function decodeUplink(input) {
  var b = input.bytes;
  var data = {};
  var i = 0;
  function need(n) {
    if (i + n > b.length) {
      throw new RangeError("channel " + hexByte(b[i - 2]) + " " + hexByte(b[i - 1]) + " needs " + n + " bytes at byte " + i);
    }
  }
  try {
    while (i < b.length) {
      if (i + 2 > b.length) {
        return { errors: ["truncated channel header at byte " + i] };
      }
      var id = b[i], type = b[i + 1];
      i += 2;
      if (id === 0x01 && type === 0x75) {
        need(1); data.battery = b[i]; i += 1;
      } else if (id === 0x03 && type === 0x67) {
        need(2); data.temperature = i16(b, i) / 10; i += 2;
      } else if (id === 0x04 && type === 0xcc) {
        need(4); data.total_in = u16(b, i); data.total_out = u16(b, i + 2); i += 4;
      } else if (id === 0x05 && type === 0xcc) {
        need(4); data.period_in = u16(b, i); data.period_out = u16(b, i + 2); i += 4;
      } else if (id === 0x83 && type === 0x67) {
        need(3);
        data.temperature = i16(b, i) / 10;
        data.temperature_alarm = temperatureAlarms[b[i + 2]] || "unknown";
        i += 3;
      } else if (id === 0x84 && type === 0xcc) {
        need(5); data.total_in = u16(b, i); data.total_out = u16(b, i + 2);
        data.total_count_alarm = b[i + 4] === 1 ? "threshold alarm" : "unknown"; i += 5;
      } else if (id === 0x85 && type === 0xcc) {
        need(5); data.period_in = u16(b, i); data.period_out = u16(b, i + 2);
        data.period_count_alarm = b[i + 4] === 1 ? "threshold alarm" : "unknown"; i += 5;
      } else if (id === 0x20 && type === 0xce) {
        need(9);
        var rec = { timestamp: u32(b, i), period_in: u16(b, i + 5), period_out: u16(b, i + 7) };
        var withTotals = b[i + 4] === 1;
        i += 9;
        if (withTotals) {
          need(4); rec.total_in = u16(b, i); rec.total_out = u16(b, i + 2); i += 4;
        }
        data.history = data.history || [];
        data.history.push(rec);
      } else {
        return { errors: ["unknown channel " + hexByte(id) + " " + hexByte(type) + " at byte " + (i - 2)] };
      }
    }
  } catch (e) {
    return { errors: [e.message] };
  }
  return { data: data, warnings: [], errors: [] };
}
