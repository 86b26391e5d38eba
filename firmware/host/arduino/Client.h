// Host shim (not part of the Arduino library): Arduino's Stream and Client
// interfaces, with the same virtual functions as the Arduino cores.
#ifndef HYPERTCP_HOST_CLIENT_H
#define HYPERTCP_HOST_CLIENT_H

#include "Arduino.h"
#include "IPAddress.h"
#include "Print.h"

class Stream : public Print {
 public:
  virtual int available() = 0;
  virtual int read() = 0;
  virtual int peek() = 0;
  void setTimeout(unsigned long ms) { _timeout = ms; }

  /** Like Arduino's: reads until `length` bytes or until no byte has come for
   *  the timeout (1 s by default); returns how many were read. */
  size_t readBytes(char* buffer, size_t length) {
    size_t count = 0;
    while (count < length) {
      int c = timedRead();
      if (c < 0) break;
      buffer[count++] = static_cast<char>(c);
    }
    return count;
  }
  size_t readBytes(uint8_t* buffer, size_t length) { return readBytes(reinterpret_cast<char*>(buffer), length); }

 protected:
  int timedRead() {
    const uint32_t start = millis();
    do {
      int c = read();
      if (c >= 0) return c;
      delay(1);
    } while (millis() - start < _timeout);
    return -1;
  }

  unsigned long _timeout = 1000;
};

class Client : public Stream {
 public:
  virtual int connect(IPAddress ip, uint16_t port) = 0;
  virtual int connect(const char* host, uint16_t port) = 0;
  size_t write(uint8_t c) override = 0;
  size_t write(const uint8_t* buffer, size_t size) override = 0;
  using Print::write;
  int available() override = 0;
  int read() override = 0;
  virtual int read(uint8_t* buffer, size_t size) = 0;
  int peek() override = 0;
  virtual void flush() = 0;
  virtual void stop() = 0;
  virtual uint8_t connected() = 0;
  virtual operator bool() = 0;
};

#endif
