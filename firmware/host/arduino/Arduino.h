// Host shim (not part of the Arduino library): the parts of Arduino.h the
// HyperTCP library and the host programs use, for Linux and g++ (C++17).
#ifndef HYPERTCP_HOST_ARDUINO_H
#define HYPERTCP_HOST_ARDUINO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <chrono>
#include <thread>

#include "IPAddress.h"
#include "Print.h"

/** Milliseconds since start, wrapping at 2^32 like on a board. The
 *  environment variable HYPERTCP_HOST_MILLIS_START sets the first value, so
 *  tests can cross the wrap (49.7 days on a device) in seconds. */
inline uint32_t millis() {
  using clock = std::chrono::steady_clock;
  static const clock::time_point start = clock::now();
  static const uint32_t offset = [] {
    const char* s = getenv("HYPERTCP_HOST_MILLIS_START");
    return s ? static_cast<uint32_t>(strtoul(s, nullptr, 10)) : 0u;
  }();
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start).count();
  return offset + static_cast<uint32_t>(elapsed);
}

inline uint32_t micros() {
  using clock = std::chrono::steady_clock;
  static const clock::time_point start = clock::now();
  return static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - start).count());
}

inline void delay(uint32_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
inline void yield() {}

/** Serial goes to stdout. */
class HostSerial : public Print {
 public:
  void begin(unsigned long) {}
  using Print::write;
  size_t write(uint8_t c) override { return fputc(c, stdout) == EOF ? 0 : 1; }
  size_t write(const uint8_t* buffer, size_t size) override { return fwrite(buffer, 1, size, stdout); }
  void flush() { fflush(stdout); }
  operator bool() const { return true; }
};

inline HostSerial Serial;

#endif
