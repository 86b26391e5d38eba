// Host shim (not part of the Arduino library): Arduino's Stream and Client
// interfaces, with the same virtual functions as the Arduino cores.
#ifndef HYPERTCP_HOST_CLIENT_H
#define HYPERTCP_HOST_CLIENT_H

#include "IPAddress.h"
#include "Print.h"

class Stream : public Print {
 public:
  virtual int available() = 0;
  virtual int read() = 0;
  virtual int peek() = 0;
  void setTimeout(unsigned long ms) { _timeout = ms; }

 protected:
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
