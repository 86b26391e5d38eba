/**
 * @file HyperTCPJsonText.h
 * @brief The little JSON the protocol core needs, without any JSON library.
 *
 * The core must work (and be tested) without ArduinoJson, yet it has to:
 *  - check that a payload given as text is one well-formed JSON value before
 *    putting it on the wire (the gateway rejects a bad body [HT-4.1]);
 *  - find `from` (a string) and `payload` (an object) in an incoming
 *    `JSON_MESSAGE`/`BROADCAST` body [HT-2.6];
 *  - read `server`/`port` from a REDIRECT body [HT-2.8];
 *  - write the `{"targetId":...,"payload":...}` envelope [HT-2.4] and the
 *    JSON login form [HT-2.2] with correctly escaped strings.
 *
 * This is a validating scanner, not a parser: it builds nothing, allocates
 * nothing, and works on spans of the caller's buffer. Its recursion is
 * bounded by HYPERTCP_JSON_MAX_DEPTH. It is not a JsonObject replacement.
 */
#ifndef HYPERTCP_JSON_TEXT_H
#define HYPERTCP_JSON_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "HyperTCPConfig.h"

namespace hypertcp {
namespace json {

/** A slice of a buffer: `p` points at the first byte, `n` bytes long. */
struct Span {
  const char* p;
  size_t n;
};

inline const char* skipWs(const char* p, const char* e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
  return p;
}

inline int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/** `p` at the opening quote; returns the byte after the closing quote, or
 *  nullptr if the string is not valid JSON (bad escape, raw control char,
 *  or no closing quote before `e`). */
inline const char* skipString(const char* p, const char* e) {
  if (p >= e || *p != '"') return nullptr;
  ++p;
  while (p < e) {
    unsigned char c = static_cast<unsigned char>(*p);
    if (c == '"') return p + 1;
    if (c < 0x20) return nullptr;  // JSON forbids raw control characters in strings
    if (c == '\\') {
      if (p + 1 >= e) return nullptr;
      char x = p[1];
      if (x == 'u') {
        if (p + 6 > e) return nullptr;
        for (int i = 2; i < 6; ++i)
          if (hexDigit(p[i]) < 0) return nullptr;
        p += 6;
        continue;
      }
      if (x != '"' && x != '\\' && x != '/' && x != 'b' && x != 'f' && x != 'n' && x != 'r' && x != 't')
        return nullptr;
      p += 2;
      continue;
    }
    ++p;
  }
  return nullptr;
}

inline const char* skipDigits(const char* p, const char* e) {
  while (p < e && *p >= '0' && *p <= '9') ++p;
  return p;
}

/** A JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
inline const char* skipNumber(const char* p, const char* e) {
  if (p < e && *p == '-') ++p;
  if (p >= e) return nullptr;
  if (*p == '0') {
    ++p;
  } else if (*p >= '1' && *p <= '9') {
    p = skipDigits(p, e);
  } else {
    return nullptr;
  }
  if (p < e && *p == '.') {
    const char* q = skipDigits(p + 1, e);
    if (q == p + 1) return nullptr;
    p = q;
  }
  if (p < e && (*p == 'e' || *p == 'E')) {
    ++p;
    if (p < e && (*p == '+' || *p == '-')) ++p;
    const char* q = skipDigits(p, e);
    if (q == p) return nullptr;
    p = q;
  }
  return p;
}

inline const char* skipLiteral(const char* p, const char* e, const char* lit) {
  size_t n = strlen(lit);
  if (static_cast<size_t>(e - p) < n || memcmp(p, lit, n) != 0) return nullptr;
  return p + n;
}

/** `p` at the first byte of a value (no leading whitespace); returns the byte
 *  after it, or nullptr if it is not one well-formed JSON value with at most
 *  `levels` nested objects/arrays (ArduinoJson's nesting limit counts the
 *  same way: 0 admits only a scalar, 1 a flat object). */
inline const char* skipValue(const char* p, const char* e, unsigned levels = HYPERTCP_JSON_MAX_DEPTH) {
  if (p >= e) return nullptr;
  switch (*p) {
    case '"':
      return skipString(p, e);
    case '{':
    case '[': {
      // Bounded recursion: a hostile body cannot exhaust the stack.
      if (levels == 0) return nullptr;
      const bool object = *p == '{';
      const char close = object ? '}' : ']';
      p = skipWs(p + 1, e);
      if (p < e && *p == close) return p + 1;
      for (;;) {
        if (object) {
          p = skipString(p, e);
          if (!p) return nullptr;
          p = skipWs(p, e);
          if (p >= e || *p != ':') return nullptr;
          p = skipWs(p + 1, e);
        }
        p = skipValue(p, e, levels - 1);
        if (!p) return nullptr;
        p = skipWs(p, e);
        if (p >= e) return nullptr;
        if (*p == close) return p + 1;
        if (*p != ',') return nullptr;
        p = skipWs(p + 1, e);
      }
    }
    case 't':
      return skipLiteral(p, e, "true");
    case 'f':
      return skipLiteral(p, e, "false");
    case 'n':
      return skipLiteral(p, e, "null");
    default:
      return skipNumber(p, e);
  }
}

/** True when [p, p+n) is exactly one JSON value, optionally surrounded by
 *  whitespace, nested at most `levels` deep. */
inline bool isValue(const char* p, size_t n, unsigned levels = HYPERTCP_JSON_MAX_DEPTH) {
  const char* e = p + n;
  const char* q = skipValue(skipWs(p, e), e, levels);
  return q && skipWs(q, e) == e;
}

/** Encodes code point `cp` as UTF-8 into `out`; returns the byte count. */
inline size_t putUtf8(uint32_t cp, char* out) {
  if (cp < 0x80) {
    out[0] = static_cast<char>(cp);
    return 1;
  }
  if (cp < 0x800) {
    out[0] = static_cast<char>(0xC0 | (cp >> 6));
    out[1] = static_cast<char>(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = static_cast<char>(0xE0 | (cp >> 12));
    out[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out[2] = static_cast<char>(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = static_cast<char>(0xF0 | (cp >> 18));
  out[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
  out[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
  out[3] = static_cast<char>(0x80 | (cp & 0x3F));
  return 4;
}

inline uint32_t hex4(const char* p) {
  return static_cast<uint32_t>((hexDigit(p[0]) << 12) | (hexDigit(p[1]) << 8) | (hexDigit(p[2]) << 4) |
                               hexDigit(p[3]));
}

/**
 * Decodes the string whose quotes span `s` (as found by the scanner) into
 * `out`, NUL-terminated. The decoded text is never longer than the escaped
 * text, so `out` may be `s.p` itself (decoding in place). Returns the decoded
 * length, or -1 if it does not fit in `cap` bytes including the NUL.
 * A lone surrogate becomes U+FFFD.
 */
inline int unescape(Span s, char* out, size_t cap) {
  const char* p = s.p + 1;
  const char* e = s.p + s.n - 1;  // the closing quote
  size_t n = 0;
  while (p < e) {
    char buf[4];
    size_t k;
    if (*p != '\\') {
      buf[0] = *p++;
      k = 1;
    } else {
      char x = p[1];
      p += 2;
      switch (x) {
        case 'b': buf[0] = '\b'; k = 1; break;
        case 'f': buf[0] = '\f'; k = 1; break;
        case 'n': buf[0] = '\n'; k = 1; break;
        case 'r': buf[0] = '\r'; k = 1; break;
        case 't': buf[0] = '\t'; k = 1; break;
        case 'u': {
          uint32_t cp = hex4(p);
          p += 4;
          if (cp >= 0xD800 && cp <= 0xDBFF && e - p >= 6 && p[0] == '\\' && p[1] == 'u') {
            uint32_t lo = hex4(p + 2);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
              p += 6;
            }
          }
          if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
          k = putUtf8(cp, buf);
          break;
        }
        default: buf[0] = x; k = 1; break;  // \" \\ \/
      }
    }
    if (n + k + 1 > cap) return -1;
    // Safe in place: the write position never passes the read position,
    // because every escape is at least as long as what it decodes to.
    for (size_t i = 0; i < k; ++i) out[n++] = buf[i];
  }
  if (n + 1 > cap) return -1;
  out[n] = '\0';
  return static_cast<int>(n);
}

/** Compares a scanned string (with its quotes) to a plain C string, decoding
 *  simple escapes on the fly. Keys are compared as the gateway would see them. */
inline bool stringEquals(Span s, const char* key) {
  const char* p = s.p + 1;
  const char* e = s.p + s.n - 1;
  while (p < e) {
    char c = *p;
    if (c == '\\') {
      char x = p[1];
      if (x == 'u') {
        uint32_t cp = hex4(p + 2);
        if (cp >= 0x80) return false;  // our keys are ASCII
        c = static_cast<char>(cp);
        p += 6;
      } else {
        c = x == 'b' ? '\b' : x == 'f' ? '\f' : x == 'n' ? '\n' : x == 'r' ? '\r' : x == 't' ? '\t' : x;
        p += 2;
      }
    } else {
      ++p;
    }
    if (*key == '\0' || *key != c) return false;
    ++key;
  }
  return *key == '\0';
}

/**
 * In the object starting at `obj` (its '{'; the object must already be
 * known to be valid), finds the first member called `key` and sets `value`
 * to the span of its value. Returns false if there is no such member.
 */
inline bool findMember(const char* obj, const char* e, const char* key, Span& value) {
  const char* p = skipWs(obj + 1, e);
  while (p < e && *p == '"') {
    const char* keyEnd = skipString(p, e);
    if (!keyEnd) return false;
    Span k = {p, static_cast<size_t>(keyEnd - p)};
    p = skipWs(keyEnd, e);
    if (p >= e || *p != ':') return false;
    p = skipWs(p + 1, e);
    const char* v = skipValue(p, e);
    if (!v) return false;
    if (stringEquals(k, key)) {
      value.p = p;
      value.n = static_cast<size_t>(v - p);
      return true;
    }
    p = skipWs(v, e);
    if (p < e && *p == ',') p = skipWs(p + 1, e);
  }
  return false;
}

/** Parses a JSON number span as a port (an integer 1..65535). */
inline bool parsePort(const char* p, size_t n, uint16_t& port) {
  if (n == 0 || n > 5) return false;
  uint32_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    if (p[i] < '0' || p[i] > '9') return false;
    v = v * 10 + static_cast<uint32_t>(p[i] - '0');
  }
  if (v == 0 || v > 65535) return false;
  port = static_cast<uint16_t>(v);
  return true;
}

/**
 * Appends to a fixed buffer; once something does not fit, `ok` stays false
 * and nothing more is written (so callers check once at the end).
 */
class Writer {
 public:
  Writer(char* buf, size_t cap) : _buf(buf), _cap(cap), _len(0), _ok(true) {}

  void raw(const char* s, size_t n) {
    if (!_ok || n > _cap - _len) {
      _ok = false;
      return;
    }
    memcpy(_buf + _len, s, n);
    _len += n;
  }
  void raw(const char* s) { raw(s, strlen(s)); }
  void ch(char c) { raw(&c, 1); }

  /** Writes `s` as a quoted JSON string, escaping what JSON requires. */
  void str(const char* s) {
    static const char hex[] = "0123456789abcdef";
    ch('"');
    for (; *s; ++s) {
      unsigned char c = static_cast<unsigned char>(*s);
      if (c == '"' || c == '\\') {
        char esc[2] = {'\\', static_cast<char>(c)};
        raw(esc, 2);
      } else if (c < 0x20) {
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
        raw(esc, 6);
      } else {
        ch(static_cast<char>(c));
      }
    }
    ch('"');
  }

  /** Room left for a caller that writes directly at cursor(). */
  size_t remaining() const { return _ok ? _cap - _len : 0; }
  char* cursor() { return _buf + _len; }
  void advance(size_t n) {
    if (!_ok || n > _cap - _len) {
      _ok = false;
      return;
    }
    _len += n;
  }
  void fail() { _ok = false; }

  size_t length() const { return _len; }
  bool ok() const { return _ok; }

 private:
  char* _buf;
  size_t _cap;
  size_t _len;
  bool _ok;
};

}  // namespace json
}  // namespace hypertcp

#endif  // HYPERTCP_JSON_TEXT_H
