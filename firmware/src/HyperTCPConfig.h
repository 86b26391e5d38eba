/**
 * @file HyperTCPConfig.h
 * @brief Wire constants and compile-time limits of the HyperTCP library.
 *
 * Every limit is a macro so a sketch (or a build flag such as
 * `-DHYPERTCP_RX_BUFFER=2048`) can change it before including
 * HyperTCPProtocol.h. All buffers are fixed arrays inside the protocol object:
 * nothing is allocated per frame.
 *
 * Clause numbers such as [HT-2.7] refer to the project's protocol contract
 * (docs/PROTOCOL.md in the gateway repository).
 */
#ifndef HYPERTCP_CONFIG_H
#define HYPERTCP_CONFIG_H

#include <stddef.h>
#include <stdint.h>

// ---------------------------------------------------------------------------
// Limits (override with -D... or #define before including the library)
// ---------------------------------------------------------------------------

/** Largest frame body the device accepts (bytes). Bigger frames are skipped
 *  without losing the frame boundaries and reported with onFrameDropped().
 *  [HT-2.6] the gateway's default per-device downlink limit is 1024. */
#ifndef HYPERTCP_RX_BUFFER
#define HYPERTCP_RX_BUFFER 1024
#endif

/** Largest frame body the device sends (bytes): the whole
 *  `{"targetId":...,"payload":...}` envelope, or the JSON login body. */
#ifndef HYPERTCP_TX_BUFFER
#define HYPERTCP_TX_BUFFER 1024
#endif

/** Longest host name kept for (re)connects and redirects (without the NUL). */
#ifndef HYPERTCP_MAX_HOST
#define HYPERTCP_MAX_HOST 63
#endif

/** Longest token kept for re-logins (without the NUL). */
#ifndef HYPERTCP_MAX_TOKEN
#define HYPERTCP_MAX_TOKEN 127
#endif

/** Longest device id claimed in the JSON login form (without the NUL). */
#ifndef HYPERTCP_MAX_DEVICE_ID
#define HYPERTCP_MAX_DEVICE_ID 63
#endif

/** Deepest nesting of objects/arrays accepted in a payload, sent or
 *  received: ArduinoJson's default nesting limit (10), so that the built-in
 *  scanner and ArduinoJson accept the same payloads. Also bounds the
 *  scanner's recursion, and so its stack use. */
#ifndef HYPERTCP_JSON_MAX_DEPTH
#define HYPERTCP_JSON_MAX_DEPTH 10
#endif

/** Bytes read from the socket per run() call at most, so one huge frame
 *  cannot starve the sketch's loop(). */
#ifndef HYPERTCP_READ_BUDGET
#define HYPERTCP_READ_BUDGET 4096
#endif

/** Failed attempts on a redirect target before going back to the server
 *  given to connect(). */
#ifndef HYPERTCP_REDIRECT_MAX_FAILURES
#define HYPERTCP_REDIRECT_MAX_FAILURES 3
#endif

// Defaults of the run-time settings (all in milliseconds).
#ifndef HYPERTCP_DEFAULT_KEEPALIVE_MS
#define HYPERTCP_DEFAULT_KEEPALIVE_MS 30000UL  // [HT-2.4] a PING every 30 s
#endif
#ifndef HYPERTCP_DEFAULT_HEARTBEAT_TIMEOUT_MS
#define HYPERTCP_DEFAULT_HEARTBEAT_TIMEOUT_MS 10000UL
#endif
#ifndef HYPERTCP_DEFAULT_LOGIN_TIMEOUT_MS
#define HYPERTCP_DEFAULT_LOGIN_TIMEOUT_MS 5000UL  // [HT-2.1] as the original
#endif
#ifndef HYPERTCP_DEFAULT_CONNECT_TIMEOUT_MS
#define HYPERTCP_DEFAULT_CONNECT_TIMEOUT_MS 10000UL  // how long connect() blocks
#endif
#ifndef HYPERTCP_DEFAULT_BACKOFF_MIN_MS
#define HYPERTCP_DEFAULT_BACKOFF_MIN_MS 1000UL
#endif
#ifndef HYPERTCP_DEFAULT_BACKOFF_MAX_MS
#define HYPERTCP_DEFAULT_BACKOFF_MAX_MS 30000UL
#endif

#if HYPERTCP_RX_BUFFER > 65535 || HYPERTCP_TX_BUFFER > 65535
#error "HyperTCP frame bodies are limited to 65535 bytes by the u16 length field [HT-1.1]"
#endif
#if HYPERTCP_RX_BUFFER < 16 || HYPERTCP_TX_BUFFER < 64
#error "HYPERTCP_RX_BUFFER must be >= 16 and HYPERTCP_TX_BUFFER >= 64"
#endif

// ---------------------------------------------------------------------------
// Wire constants: the names and numbers of the original header [HT-1.2]
// ---------------------------------------------------------------------------

/** Command types (the frame's `type` byte). */
enum HyperTCPCmd {
  HYPER_TCP_CMD_RESPONSE = 0,
  HYPER_TCP_CMD_PING = 6,
  HYPER_TCP_CMD_LOGIN = 29,
  HYPER_TCP_CMD_JSON_MESSAGE = 30,
  HYPER_TCP_CMD_REDIRECT = 41,
  HYPER_TCP_CMD_BROADCAST = 50
};

/** Status codes. The login reply carries one in its body byte; every later
 *  RESPONSE carries it in the `length` field, 0 meaning success [HT-2.7]. */
enum HyperTCPStatus {
  HYPER_TCP_STATUS_SUCCESS = 200,
  HYPER_TCP_STATUS_QUOTA_LIMIT = 1,
  HYPER_TCP_STATUS_ILLEGAL_COMMAND = 2,
  HYPER_TCP_STATUS_NOT_AUTHENTICATED = 5,
  HYPER_TCP_STATUS_NOT_ALLOWED = 6,
  HYPER_TCP_STATUS_INVALID_TOKEN = 9,
  HYPER_TCP_STATUS_ILLEGAL_COMMAND_BODY = 11,
  HYPER_TCP_STATUS_TIMEOUT = 16,
  HYPER_TCP_STATUS_SERVER_ERROR = 19
};

/** The 5-byte frame header [HT-1.1], kept for source compatibility with the
 *  original header. The library itself never memcpy()s this struct: it
 *  encodes and decodes the big-endian fields byte by byte, so it works the
 *  same on any CPU and needs no htons()/packed-struct tricks. */
struct HyperTCPHeader {
  uint8_t type;
  uint16_t msg_id;
  uint16_t length;
} __attribute__((packed));

/** Size of the header on the wire [HT-1.1]. */
#define HYPERTCP_HEADER_SIZE 5

/** msg_id of the LOGIN frame, as unchanged devices send it [HT-2.1]. */
#define HYPERTCP_LOGIN_MSG_ID 1

/** Why a connection (or a connection attempt) ended: see onDisconnected(). */
enum HyperTCPDisconnectReason {
  HYPERTCP_REASON_USER = 0,           // disconnect() or connect() called by the sketch
  HYPERTCP_REASON_CONNECT_FAILED,     // the TCP connection could not be opened
  HYPERTCP_REASON_CLOSED,             // the server (or the network) closed the connection
  HYPERTCP_REASON_LOGIN_TIMEOUT,      // no login reply within the login timeout
  HYPERTCP_REASON_LOGIN_FAILED,       // login refused with a status worth retrying
  HYPERTCP_REASON_LOGIN_REFUSED,      // INVALID_TOKEN or NOT_ALLOWED: no more retries
  HYPERTCP_REASON_HEARTBEAT_TIMEOUT,  // nothing received for keepalive + heartbeat timeout
  HYPERTCP_REASON_REDIRECT,           // the server sent REDIRECT; moving there now
  HYPERTCP_REASON_WRITE_FAILED        // the socket refused our bytes
};

/** Why a received frame was not delivered: see onFrameDropped(). */
enum HyperTCPDropReason {
  HYPERTCP_DROP_TOO_LARGE = 0,  // body larger than HYPERTCP_RX_BUFFER: skipped
  HYPERTCP_DROP_MALFORMED,      // body is not what the command requires [HT-2.6]
  HYPERTCP_DROP_NOT_ONLINE,     // a message arrived before the login completed
  HYPERTCP_DROP_NO_MEMORY       // the ArduinoJson document was too small
};

/** Short stable names, for logs. */
inline const char* hyperTCPReasonName(HyperTCPDisconnectReason r) {
  switch (r) {
    case HYPERTCP_REASON_USER: return "user";
    case HYPERTCP_REASON_CONNECT_FAILED: return "connect_failed";
    case HYPERTCP_REASON_CLOSED: return "closed";
    case HYPERTCP_REASON_LOGIN_TIMEOUT: return "login_timeout";
    case HYPERTCP_REASON_LOGIN_FAILED: return "login_failed";
    case HYPERTCP_REASON_LOGIN_REFUSED: return "login_refused";
    case HYPERTCP_REASON_HEARTBEAT_TIMEOUT: return "heartbeat_timeout";
    case HYPERTCP_REASON_REDIRECT: return "redirect";
    case HYPERTCP_REASON_WRITE_FAILED: return "write_failed";
  }
  return "unknown";
}

inline const char* hyperTCPDropName(HyperTCPDropReason r) {
  switch (r) {
    case HYPERTCP_DROP_TOO_LARGE: return "too_large";
    case HYPERTCP_DROP_MALFORMED: return "malformed";
    case HYPERTCP_DROP_NOT_ONLINE: return "not_online";
    case HYPERTCP_DROP_NO_MEMORY: return "no_memory";
  }
  return "unknown";
}

#endif  // HYPERTCP_CONFIG_H
