// Host shim (not part of the Arduino library): the parts of Arduino.h the
// HyperTCP library and the host programs use, for Linux and g++ (C++17).
#ifndef HYPERTCP_HOST_ARDUINO_H
#define HYPERTCP_HOST_ARDUINO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>  // htons() and friends, as lwip/def.h gives them on an ESP

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

// GPIO, for sketches: a pin reads back what was last written to it; inputs
// read HIGH (as with INPUT_PULLUP and nothing pressed); analog inputs read 0.
constexpr uint8_t LOW = 0, HIGH = 1;
constexpr uint8_t INPUT = 0, OUTPUT = 1, INPUT_PULLUP = 2;
inline uint8_t* hostPins() {
  static uint8_t pins[64];
  return pins;
}
inline void pinMode(uint8_t pin, uint8_t mode) {
  if (pin < 64 && mode != OUTPUT) hostPins()[pin] = HIGH;
}
inline void digitalWrite(uint8_t pin, uint8_t value) {
  if (pin < 64) hostPins()[pin] = value ? HIGH : LOW;
}
inline int digitalRead(uint8_t pin) { return pin < 64 ? hostPins()[pin] : LOW; }
inline uint16_t analogRead(uint8_t) { return 0; }

/** Arduino's random(min, max): a value in [min, max). */
inline long random(long howsmall, long howbig) {
  return howsmall >= howbig ? howsmall : howsmall + static_cast<long>(rand() % (howbig - howsmall));
}
inline long random(long howbig) { return random(0, howbig); }

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
