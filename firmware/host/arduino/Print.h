// Host shim (not part of the Arduino library): Arduino's Print, reduced to
// what the library and the host programs use.
#ifndef HYPERTCP_HOST_PRINT_H
#define HYPERTCP_HOST_PRINT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

class Print;

/** Arduino's Printable: what Print::print() can print by itself (IPAddress). */
class Printable {
 public:
  virtual ~Printable() {}
  virtual size_t printTo(Print& p) const = 0;
};

class Print {
 public:
  virtual ~Print() {}
  virtual size_t write(uint8_t c) = 0;
  virtual size_t write(const uint8_t* buffer, size_t size) {
    size_t n = 0;
    while (size--) n += write(*buffer++);
    return n;
  }
  size_t write(const char* s) { return s ? write(reinterpret_cast<const uint8_t*>(s), strlen(s)) : 0; }
  size_t write(const char* buffer, size_t size) { return write(reinterpret_cast<const uint8_t*>(buffer), size); }

  size_t print(const char* s) { return write(s); }
  size_t print(char c) { return write(static_cast<uint8_t>(c)); }
  size_t print(int v) { return printf_("%d", v); }
  size_t print(unsigned v) { return printf_("%u", v); }
  size_t print(long v) { return printf_("%ld", v); }
  size_t print(unsigned long v) { return printf_("%lu", v); }
  size_t print(double v, int digits = 2) { return printf_("%.*f", digits, v); }
  size_t print(const Printable& v) { return v.printTo(*this); }

  size_t println() { return write("\r\n"); }
  template <typename T>
  size_t println(const T& v) {
    size_t n = print(v);
    return n + println();
  }

 private:
  template <typename... A>
  size_t printf_(const char* fmt, A... a) {
    char buf[64];
    int n = snprintf(buf, sizeof buf, fmt, a...);
    return n > 0 ? write(buf, static_cast<size_t>(n) < sizeof buf ? static_cast<size_t>(n) : sizeof buf - 1) : 0;
  }
};

#endif
