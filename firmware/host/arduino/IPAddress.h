// Host shim (not part of the Arduino library): an IPv4 IPAddress.
#ifndef HYPERTCP_HOST_IPADDRESS_H
#define HYPERTCP_HOST_IPADDRESS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "Print.h"

class IPAddress : public Printable {
 public:
  IPAddress() : _b{0, 0, 0, 0} {}
  IPAddress(uint8_t a, uint8_t b, uint8_t c, uint8_t d) : _b{a, b, c, d} {}

  uint8_t operator[](int i) const { return _b[i]; }
  uint8_t& operator[](int i) { return _b[i]; }

  /** Parses dotted-quad text ("127.0.0.1"). */
  bool fromString(const char* s) {
    for (int i = 0; i < 4; ++i) {
      char* end;
      unsigned long v = strtoul(s, &end, 10);
      if (end == s || v > 255 || (i < 3 && *end != '.') || (i == 3 && *end != '\0')) return false;
      _b[i] = static_cast<uint8_t>(v);
      s = end + 1;
    }
    return true;
  }

 size_t printTo(Print& p) const override {
    char text[16];
    int n = snprintf(text, sizeof text, "%u.%u.%u.%u", _b[0], _b[1], _b[2], _b[3]);
    return p.write(text, static_cast<size_t>(n));
  }

 private:
  uint8_t _b[4];
};

#endif
