// Milesight WS301 magnetic door/window contact sensor.
// Written for Sluice from Milesight's public WS301 payload definition: a sequence of
// channel id (1 byte), channel type (1 byte) and value, little endian, usually on fPort 85.
//   01 75  battery, uint8, %
//   03 00  door state, uint8: 0 closed, 1 open
//   04 00  installation, uint8: 0 installed, 1 removed from its mount (tamper)
//   FF xx  device information (protocol, hardware and firmware versions, serial number, …)
function hexByte(n) {
  return ("0" + n.toString(16)).slice(-2);
}

function decodeUplink(input) {
  var b = input.bytes;
  var data = {};
  var i = 0;
  while (i < b.length) {
    if (i + 2 > b.length) {
      return { errors: ["truncated channel header at byte " + i] };
    }
    var id = b[i], type = b[i + 1];
    var size = channelSize(id, type);
    if (size < 0) {
      return { errors: ["unknown channel " + hexByte(id) + " " + hexByte(type) + " at byte " + i] };
    }
    if (i + 2 + size > b.length) {
      return { errors: ["channel " + hexByte(id) + " " + hexByte(type) + " needs " + size + " bytes at byte " + (i + 2)] };
    }
    var v = b.slice(i + 2, i + 2 + size);
    i += 2 + size;
    if (id === 0x01 && type === 0x75) {
      data.battery = v[0];
    } else if (id === 0x03 && type === 0x00) {
      data.door_open = v[0] === 1;
      data.state = v[0] === 1 ? "open" : "closed";
    } else if (id === 0x04 && type === 0x00) {
      data.installed = v[0] === 0;
    } else {
      deviceInfo(data, type, v);
    }
  }
  return { data: data, warnings: [], errors: [] };
}

function channelSize(id, type) {
  if (id === 0x01 && type === 0x75) return 1;
  if ((id === 0x03 || id === 0x04) && type === 0x00) return 1;
  if (id === 0xff) {
    switch (type) {
      case 0x01: case 0x0b: case 0x0f: return 1;
      case 0x09: case 0x0a: return 2;
      case 0x16: return 8;
    }
  }
  return -1;
}

function deviceInfo(data, type, v) {
  switch (type) {
    case 0x01: data.ipso_version = "v" + (v[0] >> 4) + "." + (v[0] & 0x0f); break;
    case 0x09: data.hardware_version = "v" + v[0] + "." + (v[1] >> 4); break;
    case 0x0a: data.firmware_version = "v" + v[0] + "." + v[1]; break;
    case 0x0b: data.powered_on = true; break;
    case 0x0f: data.lorawan_class = ["A", "B", "C", "CtoB"][v[0]] || "unknown"; break;
    case 0x16: data.serial_number = v.map(hexByte).join(""); break;
  }
}
