/**
 * @file HyperTCPTransport.h
 * @brief HyperTCPTransport<TClient>: the TCP side, over any Arduino Client.
 *
 * Same API as the original header's transport (constructed from a client
 * reference, begin(host, port), begin(IPAddress, port), connect(),
 * disconnect(), read(), write(), connected(), available()), with two
 * deliberate differences:
 *  - begin(host, port) copies the host name. The original kept the caller's
 *    pointer, which is how its REDIRECT ended up pointing into a freed JSON
 *    document.
 *  - read() never blocks: it returns what the client already has (possibly
 *    0). The protocol assembles frames itself, so a slow network cannot stall
 *    loop() for the client's read timeout.
 */
#ifndef HYPERTCP_TRANSPORT_H
#define HYPERTCP_TRANSPORT_H

#include <Arduino.h>
#include <Client.h>
#include <IPAddress.h>
#include <string.h>

#include "HyperTCPConfig.h"

template <typename TClient>
class HyperTCPTransport {
 public:
  explicit HyperTCPTransport(TClient& client) : _client(&client) { _host[0] = '\0'; }
  HyperTCPTransport() : _client(NULL) { _host[0] = '\0'; }

  void setClient(TClient* client) { _client = client; }

  /** Remembers where to connect; the host name is copied (truncated to
   *  HYPERTCP_MAX_HOST characters, which begin() reports by returning false). */
  bool begin(const char* host, uint16_t port) {
    _port = port;
    _useIp = false;
    if (!host) host = "";
    size_t n = strlen(host);
    bool fits = n <= HYPERTCP_MAX_HOST;
    if (!fits) n = HYPERTCP_MAX_HOST;
    memcpy(_host, host, n);
    _host[n] = '\0';
    return fits;
  }

  bool begin(IPAddress ip, uint16_t port) {
    _ip = ip;
    _port = port;
    _useIp = true;
    _host[0] = '\0';
    return true;
  }

  bool connect() {
    if (!_client) return false;
    // Arduino clients return 1 on success (some return other positive values
    // for "in progress" errors, so compare with 1 like the original did).
    _connected = _useIp ? _client->connect(_ip, _port) == 1 : _client->connect(_host, _port) == 1;
    return _connected;
  }

  void disconnect() {
    if (_client) _client->stop();
    _connected = false;
  }

  /** Reads up to `len` bytes that have already arrived; never waits. */
  size_t read(void* buffer, size_t len) {
    if (!_client || len == 0) return 0;
    int avail = _client->available();
    if (avail <= 0) return 0;
    if (static_cast<size_t>(avail) < len) len = static_cast<size_t>(avail);
    int n = _client->read(static_cast<uint8_t*>(buffer), len);
    return n > 0 ? static_cast<size_t>(n) : 0;
  }

  size_t write(const void* buffer, size_t len) {
    if (!_client) return 0;
    return _client->write(static_cast<const uint8_t*>(buffer), len);
  }

  bool connected() { return _client && _connected && _client->connected(); }

  int available() { return _client ? _client->available() : 0; }

  const char* host() const { return _host; }
  uint16_t port() const { return _port; }

 private:
  TClient* _client;
  char _host[HYPERTCP_MAX_HOST + 1];
  IPAddress _ip;
  uint16_t _port = 0;
  bool _connected = false;
  bool _useIp = false;
};

#endif  // HYPERTCP_TRANSPORT_H
