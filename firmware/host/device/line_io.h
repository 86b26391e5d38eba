// Host build only: the line protocol shared by the test programs
// (hypertcp_device.cpp, original_device.cpp): one event per line on stdout,
// one command per line on stdin.
#ifndef HYPERTCP_HOST_LINE_IO_H
#define HYPERTCP_HOST_LINE_IO_H

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include <string>

__attribute__((format(printf, 1, 2))) inline void emit(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fputc('\n', stdout);
  fflush(stdout);  // the test reads line by line through a pipe
}

/** Text for one line: raw newlines/tabs (only ever whitespace between JSON
 *  tokens, since JSON strings cannot hold them raw) become spaces. */
inline std::string oneLine(const char* s, size_t n) {
  std::string out(s, n);
  for (char& c : out)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  return out;
}

/** Commands from stdin, without ever blocking the sketch's loop for long. */
class LineReader {
 public:
  /** Waits up to `ms` (the loop's delay()) for input, then calls `handle`
   *  with each complete non-empty line until it returns false. Returns false
   *  when stdin has ended or `handle` asked to stop. */
  template <typename Handle>
  bool poll(int ms, Handle handle) {
    pollfd p = {0, POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) return true;
    char buf[4096];
    ssize_t n = read(0, buf, sizeof buf);
    if (n <= 0) return false;  // stdin closed: the test is gone
    _pending.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = _pending.find('\n')) != std::string::npos) {
      std::string line = _pending.substr(0, nl);
      _pending.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty() && !handle(line)) return false;
    }
    return true;
  }

 private:
  std::string _pending;
};

#endif
