// Milesight WS523 portable smart socket (power and energy meter).
// Written for Sluice from Milesight's public WS52x payload definition: a sequence of channel
// id, channel type and value (little endian), usually on fPort 85.
//   03 74  voltage, uint16, 0.1 V
//   04 80  active power, int32, W
//   05 81  power factor, uint8, %
//   06 83  energy consumed, uint32, Wh
//   07 C9  current, uint16, mA
//   08 70  socket state, uint8: 0 off, 1 on
function hexByte(n) {
  return ("0" + n.toString(16)).slice(-2);
}

function u16(v) {
  return v[0] | (v[1] << 8);
}

function u32(v) {
  return (v[0] | (v[1] << 8) | (v[2] << 16)) + v[3] * 0x1000000;
}

function i32(v) {
  return v[0] | (v[1] << 8) | (v[2] << 16) | (v[3] << 24);
}

var channels = {
  "0374": { size: 2, set: function (d, v) { d.voltage = u16(v) / 10; } },
  "0480": { size: 4, set: function (d, v) { d.active_power = i32(v); } },
  "0581": { size: 1, set: function (d, v) { d.power_factor = v[0]; } },
  "0683": { size: 4, set: function (d, v) { d.energy = u32(v); } },
  "07c9": { size: 2, set: function (d, v) { d.current = u16(v); } },
  "0870": { size: 1, set: function (d, v) { d.socket_on = v[0] === 1; } }
};

function decodeUplink(input) {
  var b = input.bytes;
  var data = {};
  var i = 0;
  while (i < b.length) {
    if (i + 2 > b.length) {
      return { errors: ["truncated channel header at byte " + i] };
    }
    var name = hexByte(b[i]) + " " + hexByte(b[i + 1]);
    var c = channels[hexByte(b[i]) + hexByte(b[i + 1])];
    if (!c) {
      return { errors: ["unknown channel " + name + " at byte " + i] };
    }
    if (i + 2 + c.size > b.length) {
      return { errors: ["channel " + name + " needs " + c.size + " bytes at byte " + (i + 2)] };
    }
    c.set(data, b.slice(i + 2, i + 2 + c.size));
    i += 2 + c.size;
  }
  return { data: data, warnings: [], errors: [] };
}
