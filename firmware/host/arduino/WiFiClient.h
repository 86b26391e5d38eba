// Host shim (not part of the Arduino library): WiFiClient over POSIX
// sockets. Like an ESP32/ESP8266 WiFiClient, read() and available() never
// block, connected() stays true while received bytes are unread, and write()
// sends everything or reports a short count.
#ifndef HYPERTCP_HOST_WIFICLIENT_H
#define HYPERTCP_HOST_WIFICLIENT_H

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "Client.h"

class WiFiClient : public Client {
 public:
  WiFiClient() {}
  ~WiFiClient() override { stop(); }
  WiFiClient(const WiFiClient&) = delete;
  WiFiClient& operator=(const WiFiClient&) = delete;

  int connect(IPAddress ip, uint16_t port) override {
    char host[16];
    snprintf(host, sizeof host, "%u.%u.%u.%u", ip[0], ip[1], ip[2], ip[3]);
    return connect(host, port);
  }

  int connect(const char* host, uint16_t port) override {
    stop();
    addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    addrinfo* list = nullptr;
    if (getaddrinfo(host, service, &hints, &list) != 0) return 0;
    for (addrinfo* ai = list; ai && _fd < 0; ai = ai->ai_next) {
      int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
      if (fd < 0) continue;
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
      int r = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
      if (r < 0 && errno == EINPROGRESS) {
        // Bounded wait, like the ESP cores' connect timeout.
        pollfd p = {fd, POLLOUT, 0};
        int err = ETIMEDOUT;
        socklen_t len = sizeof err;
        if (poll(&p, 1, kConnectTimeoutMs) == 1) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        r = err == 0 ? 0 : -1;
      }
      if (r == 0) {
        _fd = fd;
      } else {
        ::close(fd);
      }
    }
    freeaddrinfo(list);
    if (_fd < 0) return 0;
    int one = 1;
    setsockopt(_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    _eof = false;
    return 1;
  }

  using Print::write;
  size_t write(uint8_t c) override { return write(&c, 1); }
  size_t write(const uint8_t* buffer, size_t size) override {
    if (_fd < 0) return 0;
    size_t sent = 0;
    while (sent < size) {
      ssize_t n = ::send(_fd, buffer + sent, size - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pollfd p = {_fd, POLLOUT, 0};
        if (poll(&p, 1, kWriteTimeoutMs) <= 0) break;
      } else {
        _eof = true;
        break;
      }
    }
    return sent;
  }

  int available() override {
    if (_fd < 0) return 0;
    int n = 0;
    if (ioctl(_fd, FIONREAD, &n) < 0) return 0;
    if (n > 0) return n;
    if (!_eof) {
      // Nothing buffered: find out whether the peer has closed.
      char c;
      ssize_t r = recv(_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) _eof = true;
    }
    return 0;
  }

  int read() override {
    uint8_t c;
    return read(&c, 1) == 1 ? c : -1;
  }

  int read(uint8_t* buffer, size_t size) override {
    if (_fd < 0 || size == 0) return -1;
    ssize_t n = recv(_fd, buffer, size, MSG_DONTWAIT);
    if (n > 0) return static_cast<int>(n);
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) _eof = true;
    return -1;
  }

  int peek() override {
    if (_fd < 0) return -1;
    uint8_t c;
    return recv(_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 1 ? c : -1;
  }

  void flush() override {}

  void stop() override {
    if (_fd >= 0) ::close(_fd);
    _fd = -1;
    _eof = false;
  }

  uint8_t connected() override {
    if (_fd < 0) return 0;
    if (available() > 0) return 1;
    return _eof ? 0 : 1;
  }

  operator bool() override { return _fd >= 0; }

 private:
  static constexpr int kConnectTimeoutMs = 3000;
  static constexpr int kWriteTimeoutMs = 5000;
  int _fd = -1;
  bool _eof = false;
};

#endif
