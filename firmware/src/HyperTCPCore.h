/**
 * @file HyperTCPCore.h
 * @brief The protocol engine: framing, login, keepalive, reconnect, redirect.
 *
 * Needs no JSON library. Messages go out as JSON text and come in through
 * onMessageText()/onBroadcastText(); HyperTCPProtocol.h adds the ArduinoJson
 * JsonObject API on top when ArduinoJson is available.
 *
 * Design, and what it fixes in the original header:
 *  - One state machine per instance, driven by run(). Every timer is a member
 *    (the original kept its ping timer in a function-level `static`, shared
 *    by all instances, so a second instance never pinged).
 *  - Frames are assembled from non-blocking reads into fixed buffers. Every
 *    frame is consumed whole, whatever its type and size: unknown commands and
 *    frames larger than HYPERTCP_RX_BUFFER are skipped byte-exactly, so the
 *    next header is always read at the right place (the original discarded at
 *    most 256 bytes and then read bodies as headers).
 *  - A dropped connection, a dead server (no bytes for keepalive + heartbeat
 *    timeout) or a REDIRECT leads to a new connection and a new login, with
 *    exponential backoff and jitter between failed attempts. Only a refused
 *    login (INVALID_TOKEN, NOT_ALLOWED) stops the retries.
 *  - No heap: the receive and send buffers are arrays sized by macros.
 */
#ifndef HYPERTCP_CORE_H
#define HYPERTCP_CORE_H

#include <Arduino.h>
#include <IPAddress.h>
#include <stdio.h>
#include <string.h>

#include "HyperTCPConfig.h"
#include "HyperTCPJsonText.h"
#include "HyperTCPTransport.h"

template <class Transport>
class HyperTCPCore {
 public:
  /** Connection state. The first four names are the original header's. */
  enum ProtocolState {
    STATE_DISCONNECTED,   // no connection; a new attempt is due if reconnecting
    STATE_CONNECTING,     // opening the TCP connection
    STATE_CONNECTED,      // TCP open, LOGIN sent, waiting for its reply
    STATE_AUTHENTICATED,  // logged in: messages can be sent and received
    STATE_REFUSED         // the server refused the token or device id: no retries
  };

  explicit HyperTCPCore(Transport& transport) : _transport(transport) {
    _home[0] = _host[0] = _token[0] = _deviceId[0] = '\0';
  }
  virtual ~HyperTCPCore() {}

  HyperTCPCore(const HyperTCPCore&) = delete;
  HyperTCPCore& operator=(const HyperTCPCore&) = delete;

  // ------------------------------------------------------------------------
  // Settings (may be called at any time; they apply from the next use)
  // ------------------------------------------------------------------------

  /** Logs in with the JSON form `{"token":..,"device_id":..}` [HT-2.2] instead
   *  of the raw token [HT-2.1]. nullptr or "" goes back to the raw form.
   *  Returns false if the id is longer than HYPERTCP_MAX_DEVICE_ID. */
  bool setDeviceId(const char* deviceId) {
    if (!deviceId) deviceId = "";
    return copyString(_deviceId, sizeof _deviceId, deviceId);
  }

  /** Sends a PING after `intervalMs` without sending anything (and probes once
   *  after `intervalMs` without receiving anything); declares the server dead
   *  after `intervalMs + timeoutMs` without a single received byte, then
   *  reconnects. 0 disables the respective part. Defaults 30 s and 10 s. */
  void setKeepAlive(uint32_t intervalMs, uint32_t timeoutMs) {
    _kaInterval = intervalMs;
    _kaTimeout = timeoutMs;
  }

  /** How long to wait for the login reply (default 5 s, as the original). */
  void setLoginTimeout(uint32_t ms) { _loginTimeout = ms; }

  /** How long connect() blocks at most (default 10 s, as the original). */
  void setConnectTimeout(uint32_t ms) { _connectTimeout = ms; }

  /** Delay between failed attempts: starts near `minMs`, doubles up to
   *  `maxMs`, with random jitter so a fleet does not reconnect in lockstep
   *  after a gateway restart. Defaults 1 s and 30 s. */
  void setReconnectBackoff(uint32_t minMs, uint32_t maxMs) {
    _backoffMin = minMs ? minMs : 1;
    _backoffMax = maxMs < _backoffMin ? _backoffMin : maxMs;
  }

  /** Sets the msg_id of the next frame on the current connection (0 is
   *  never sent: it becomes 1). The counter restarts at 1 at every login, as
   *  an unchanged device's does [HT-2.3]. Mainly for tests of the wrap. */
  void setNextMessageId(uint16_t id) { _nextId = id ? id : 1; }

  // ------------------------------------------------------------------------
  // Connection
  // ------------------------------------------------------------------------

  /**
   * Connects and logs in, blocking until logged in, refused, or the connect
   * timeout (like the original). Returns true when logged in. Whatever it
   * returns, the token and server are remembered and run() keeps trying in
   * the background (unless the login was refused), so a sketch may call
   * connect() once in setup() and only run() afterwards.
   */
  bool connect(const char* token, const char* server = "your-server.com", uint16_t port = 80) {
    if (!connectAsync(token, server, port)) return false;
    if (_hookDepth > 0) return false;  // cannot block inside a callback: run() will connect
    const uint32_t start = millis();
    for (;;) {
      run();
      if (_state == STATE_AUTHENTICATED) return true;
      if (_state == STATE_REFUSED || !_want) return false;
      if (millis() - start >= _connectTimeout) return false;
      delay(10);  // also lets the ESP8266/ESP32 WiFi stack run
    }
  }

  bool connect(const char* token, IPAddress ip, uint16_t port) {
    char host[16];
    snprintf(host, sizeof host, "%u.%u.%u.%u", static_cast<unsigned>(ip[0]), static_cast<unsigned>(ip[1]),
             static_cast<unsigned>(ip[2]), static_cast<unsigned>(ip[3]));
    return connect(token, host, port);
  }

  /** Like connect() but returns at once; run() opens the connection. */
  bool connectAsync(const char* token, const char* server, uint16_t port) {
    if (!token || !server) return false;
    if (_want && port == _homePort && strcmp(token, _token) == 0 && strcmp(server, _home) == 0) {
      // The same arguments while logged in or (re)connecting: carry on where
      // we are, a REDIRECT target included. A sketch written for the original
      // calls connect() whenever run() returns false, which during a redirect
      // would otherwise send the device back to the server it was sent away from.
      if (_state == STATE_DISCONNECTED) _nextAttemptAt = millis();  // asked for now: no backoff wait
      return true;
    }
    if (_state == STATE_CONNECTED || _state == STATE_AUTHENTICATED) closeConnection(HYPERTCP_REASON_USER);
    if (!copyString(_token, sizeof _token, token) || !copyString(_home, sizeof _home, server)) {
      _want = false;
      _state = STATE_DISCONNECTED;
      return false;
    }
    _homePort = port;
    goHome();
    _failures = 0;
    _loginStatus = 0;
    _want = true;
    _state = STATE_DISCONNECTED;
    _nextAttemptAt = millis();
    return true;
  }

  /** Closes the connection and stops reconnecting until connect() is called. */
  void disconnect() {
    _want = false;
    if (_state == STATE_CONNECTED || _state == STATE_AUTHENTICATED) {
      closeConnection(HYPERTCP_REASON_USER);
    } else {
      _transport.disconnect();
      _state = STATE_DISCONNECTED;
    }
  }

  /**
   * Call from loop(). Reads and handles whatever has arrived, sends the
   * keepalive, detects a dead server, and (re)connects when due. Never waits
   * for the network, except inside the client's own connect().
   * Returns true while logged in.
   */
  bool run() {
    if (_hookDepth > 0) return _state == STATE_AUTHENTICATED;  // re-entered from a callback
    switch (_state) {
      case STATE_DISCONNECTED:
      case STATE_CONNECTING:
        if (_want && static_cast<int32_t>(millis() - _nextAttemptAt) >= 0) attempt();
        break;
      case STATE_CONNECTED:
      case STATE_AUTHENTICATED:
        service();
        break;
      case STATE_REFUSED:
        break;
    }
    return _state == STATE_AUTHENTICATED;
  }

  // ------------------------------------------------------------------------
  // Sending (all return false when not logged in or the body does not fit)
  // ------------------------------------------------------------------------

  /** Sends JSON_MESSAGE `{"targetId":targetId,"payload":<payloadJson>}`
   *  [HT-2.4]. `payloadJson` must be one well-formed JSON value; it is sent
   *  verbatim (less surrounding whitespace). */
  bool sendMessage(const char* targetId, const char* payloadJson) {
    return sendText(HYPER_TCP_CMD_JSON_MESSAGE, targetId, payloadJson);
  }

  /** Sends BROADCAST `{"targetId":"broadcast","payload":...}` [HT-2.4]. */
  bool broadcastMessage(const char* payloadJson) {
    return sendText(HYPER_TCP_CMD_BROADCAST, "broadcast", payloadJson);
  }

  /** Sends JSON_MESSAGE to "server": published to the device's up topic. */
  bool sendToServer(const char* payloadJson) { return sendText(HYPER_TCP_CMD_JSON_MESSAGE, "server", payloadJson); }

  /** Sends a frame of any type with a raw body, for command types mapped to
   *  raw topics in the gateway's configuration [HT-5.6]. */
  bool sendFrame(uint8_t type, const void* body, uint16_t length) {
    if (_state != STATE_AUTHENTICATED || length > HYPERTCP_TX_BUFFER || (length && !body)) return false;
    if (length) memcpy(_tx + HYPERTCP_HEADER_SIZE, body, length);
    return sendBuilt(type, length);
  }

  // ------------------------------------------------------------------------
  // Status
  // ------------------------------------------------------------------------

  ProtocolState getState() const { return _state; }
  bool isOnline() const { return _state == STATE_AUTHENTICATED; }
  /** True while not logged in but trying to be (false after disconnect() or
   *  a refused login: then only connect() starts again). */
  bool isRetrying() const { return _want && _state != STATE_AUTHENTICATED; }
  /** Status of the last login reply (200 on success), TIMEOUT (16) if none
   *  came in time, 0 before the first reply. */
  uint16_t getLoginStatus() const { return _loginStatus; }
  /** msg_id of the last message sent with the send functions. */
  uint16_t getLastMessageId() const { return _lastMessageId; }
  /** Connection attempts since the object was created. */
  uint32_t getConnectAttempts() const { return _attempts; }
  /** Where the next or current connection goes (changes on REDIRECT). */
  const char* getServerHost() const { return _host; }
  uint16_t getServerPort() const { return _port; }

 protected:
  // ------------------------------------------------------------------------
  // Callbacks: override in a subclass. They run inside run() (or connect()).
  // They may send and call disconnect()/connectAsync(); run() and a blocking
  // connect() called from a callback return at once.
  // ------------------------------------------------------------------------

  /** A connection attempt to host:port starts. */
  virtual void onConnecting(const char* /*host*/, uint16_t /*port*/) {}
  /** Logged in (after every successful login, including re-logins). */
  virtual void onConnected() {}
  /** A connection or connection attempt ended. */
  virtual void onDisconnected(HyperTCPDisconnectReason /*reason*/) {}
  /** The server refused the login (or did not answer: status TIMEOUT).
   *  After INVALID_TOKEN or NOT_ALLOWED the library stops retrying. */
  virtual void onLoginFailed(uint16_t /*status*/) {}
  /** The server sent REDIRECT; the library reconnects there right away. */
  virtual void onRedirect(const char* /*host*/, uint16_t /*port*/) {}
  /** A RESPONSE to one of our frames: status 0 = success, else the error
   *  status the gateway put in the length field [HT-2.7]. */
  virtual void onResponse(uint16_t /*msgId*/, uint16_t /*status*/) {}
  /** A frame could not be delivered (see HyperTCPDropReason). */
  virtual void onFrameDropped(uint8_t /*type*/, uint16_t /*msgId*/, uint16_t /*length*/,
                              HyperTCPDropReason /*reason*/) {}
  /** A frame of a command type this library does not know [HT-5.6]. */
  virtual void onCustomFrame(uint8_t /*type*/, uint16_t /*msgId*/, const uint8_t* /*body*/,
                             uint16_t /*length*/) {}

  /** A JSON_MESSAGE `{"from":..,"payload":{..}}` [HT-2.6]. `payloadJson` is
   *  the payload object's text, NUL-terminated, `length` bytes. Both
   *  pointers are valid only during the call. The default prints it, like the
   *  original's default handler. */
  virtual void onMessageText(const char* from, const char* payloadJson, size_t length) {
    printMessage("Message from: ", from, payloadJson, length);
  }
  /** A BROADCAST, same form. */
  virtual void onBroadcastText(const char* from, const char* payloadJson, size_t length) {
    printMessage("Broadcast from: ", from, payloadJson, length);
  }

  /** For a layer that serialises the payload itself (the ArduinoJson layer):
   *  builds the envelope in the send buffer, calling `fill(dst, cap)` to
   *  write exactly `payloadLen` bytes of payload (it may write a NUL after
   *  them; `cap` is payloadLen + 1). */
  template <class Fill>
  bool sendEnvelopeWith(uint8_t type, const char* targetId, size_t payloadLen, Fill fill) {
    if (_state != STATE_AUTHENTICATED || !targetId) return false;
    hypertcp::json::Writer w(reinterpret_cast<char*>(_tx) + HYPERTCP_HEADER_SIZE, HYPERTCP_TX_BUFFER);
    w.raw("{\"targetId\":");
    w.str(targetId);
    w.raw(",\"payload\":");
    // payload, then '}' (where fill's NUL may land first)
    if (!w.ok() || w.remaining() < payloadLen + 1) return false;
    if (fill(w.cursor(), payloadLen + 1) != payloadLen) return false;
    w.advance(payloadLen);
    w.ch('}');
    if (!w.ok()) return false;
    return sendBuilt(type, static_cast<uint16_t>(w.length()));
  }

  /** Reports the frame being delivered now as dropped (for layers). */
  void reportDrop(HyperTCPDropReason reason) {
    HookGuard guard(*this);
    onFrameDropped(_rxType, _rxId, _rxLen, reason);
  }

 private:
  enum RxPhase { RX_HEADER, RX_BODY, RX_SKIP };

  /** Counts nested callbacks, so run()/connect() know not to re-enter. */
  struct HookGuard {
    explicit HookGuard(HyperTCPCore& c) : core(c) { ++core._hookDepth; }
    ~HookGuard() { --core._hookDepth; }
    HookGuard(const HookGuard&) = delete;
    HookGuard& operator=(const HookGuard&) = delete;
    HyperTCPCore& core;
  };

  struct CopyFill {
    const char* src;
    size_t operator()(char* dst, size_t) const {
      memcpy(dst, src, len);
      return len;
    }
    size_t len;
  };

  static bool copyString(char* dst, size_t cap, const char* src) {
    size_t n = strlen(src);
    if (n + 1 > cap) return false;
    memmove(dst, src, n + 1);  // memmove: src may be our own buffer (getServerHost())
    return true;
  }

  static void printMessage(const char* label, const char* from, const char* payload, size_t length) {
    Serial.print(label);
    Serial.println(from);
    Serial.print("Payload: ");
    Serial.write(reinterpret_cast<const uint8_t*>(payload), length);
    Serial.println();
  }

  void goHome() {
    memmove(_host, _home, strlen(_home) + 1);
    _port = _homePort;
    _redirected = false;
    _redirectFailures = 0;
  }

  // --- connection lifecycle ------------------------------------------------

  void attempt() {
    ++_attempts;
    _state = STATE_CONNECTING;
    _transport.begin(_host, _port);
    {
      HookGuard guard(*this);
      onConnecting(_host, _port);
    }
    if (!_want || _state != STATE_CONNECTING) return;  // the callback disconnected or restarted
    if (!_transport.connect()) {
      closeConnection(HYPERTCP_REASON_CONNECT_FAILED);
      return;
    }
    ++_gen;
    resetRx();
    const uint32_t now = millis();
    _lastRx = _lastTx = _loginSentAt = now;
    _probeSent = false;
    _state = STATE_CONNECTED;
    sendLogin();
  }

  /** Ends the current connection (or attempt) and decides what comes next. */
  void closeConnection(HyperTCPDisconnectReason reason) {
    const bool wasOnline = _state == STATE_AUTHENTICATED;
    _transport.disconnect();
    ++_gen;  // anything still running for the old connection sees this and stops
    resetRx();
    if (reason == HYPERTCP_REASON_USER) {
      _want = false;
      _state = STATE_DISCONNECTED;
    } else if (reason == HYPERTCP_REASON_LOGIN_REFUSED) {
      // A user expects a wrong token to stop, not to hammer the server.
      _want = false;
      _state = STATE_REFUSED;
    } else {
      _state = STATE_DISCONNECTED;
      schedule(reason, wasOnline);
    }
    HookGuard guard(*this);
    onDisconnected(reason);
  }

  void schedule(HyperTCPDisconnectReason reason, bool wasOnline) {
    const uint32_t now = millis();
    if (reason == HYPERTCP_REASON_REDIRECT) {
      _failures = 0;
      _nextAttemptAt = now;  // the server asked us to move: go now
      return;
    }
    if (wasOnline) {
      _failures = 0;
    } else if (_redirected && ++_redirectFailures >= HYPERTCP_REDIRECT_MAX_FAILURES) {
      goHome();  // the redirect target does not take us: back to the configured server
    }
    uint32_t base = _backoffMin;
    for (uint8_t i = 0; i < _failures && base < _backoffMax; ++i) base = base > _backoffMax / 2 ? _backoffMax : base * 2;
    if (base > _backoffMax) base = _backoffMax;
    if (_failures < 32) ++_failures;
    // "Equal jitter": between base/2 and base.
    _nextAttemptAt = now + base / 2 + random32() % (base / 2 + 1);
  }

  uint32_t random32() {
    if (_rng == 0) _rng = (static_cast<uint32_t>(reinterpret_cast<uintptr_t>(this)) ^ millis()) | 1u;
    _rng ^= _rng << 13;  // xorshift32: tiny, and good enough for jitter
    _rng ^= _rng >> 17;
    _rng ^= _rng << 5;
    return _rng;
  }

  void service() {
    const uint32_t gen = _gen;
    pump();
    if (gen != _gen) return;  // the connection was closed or replaced while handling a frame
    // Bytes may remain after the peer closed (a REDIRECT or a login reply is
    // typically followed by a close): only give up once they are read.
    if (!_transport.connected() && _transport.available() <= 0) {
      closeConnection(HYPERTCP_REASON_CLOSED);
      return;
    }
    const uint32_t now = millis();
    if (_state == STATE_CONNECTED) {
      if (now - _loginSentAt >= _loginTimeout) {
        _loginStatus = HYPER_TCP_STATUS_TIMEOUT;
        {
          HookGuard guard(*this);
          onLoginFailed(HYPER_TCP_STATUS_TIMEOUT);
        }
        if (gen == _gen) closeConnection(HYPERTCP_REASON_LOGIN_TIMEOUT);
      }
      return;
    }
    // Logged in. Any received byte proves the server alive (as the gateway
    // counts any byte as activity [HT-3.4]).
    if (_kaTimeout && _kaInterval && now - _lastRx >= _kaInterval + _kaTimeout) {
      closeConnection(HYPERTCP_REASON_HEARTBEAT_TIMEOUT);
      return;
    }
    if (_kaInterval && (now - _lastTx >= _kaInterval || (!_probeSent && now - _lastRx >= _kaInterval))) {
      _probeSent = true;  // the gateway answers a PING with RESPONSE [HT-3.4]
      writeEmpty(HYPER_TCP_CMD_PING, nextId());
    }
  }

  // --- receiving ---------------------------------------------------------

  void resetRx() {
    _rxPhase = RX_HEADER;
    _hdrFill = 0;
    _rxFill = 0;
  }

  /** Reads what has arrived, a frame at a time, never past the current
   *  frame, so no stash buffer is needed. [HT-1.4] any split works. */
  void pump() {
    const uint32_t gen = _gen;
    size_t budget = HYPERTCP_READ_BUDGET;
    while (budget > 0 && gen == _gen) {
      uint8_t* dst;
      size_t want;
      if (_rxPhase == RX_HEADER) {
        dst = _hdr + _hdrFill;
        want = HYPERTCP_HEADER_SIZE - _hdrFill;
      } else if (_rxPhase == RX_BODY) {
        dst = _rx + _rxFill;
        want = _rxLen - _rxFill;
      } else {  // RX_SKIP: the body goes through the receive buffer and is forgotten
        dst = _rx;
        want = static_cast<size_t>(_rxLen - _rxFill);
        if (want > HYPERTCP_RX_BUFFER) want = HYPERTCP_RX_BUFFER;
      }
      if (want > budget) want = budget;
      const size_t n = _transport.read(dst, want);
      if (n == 0) break;
      budget -= n;
      _lastRx = millis();
      _probeSent = false;
      if (_rxPhase == RX_HEADER) {
        _hdrFill = static_cast<uint8_t>(_hdrFill + n);
        if (_hdrFill == HYPERTCP_HEADER_SIZE) onHeader();
      } else {
        _rxFill = static_cast<uint16_t>(_rxFill + n);
        if (_rxFill == _rxLen) onBodyComplete();
      }
    }
  }

  void onHeader() {
    _hdrFill = 0;
    _rxFill = 0;
    _rxType = _hdr[0];
    _rxId = static_cast<uint16_t>((_hdr[1] << 8) | _hdr[2]);  // big-endian [HT-1.1]
    _rxLen = static_cast<uint16_t>((_hdr[3] << 8) | _hdr[4]);
    if (_rxType == HYPER_TCP_CMD_RESPONSE &&
        !(_state == STATE_CONNECTED && _rxId == HYPERTCP_LOGIN_MSG_ID && _rxLen == 1)) {
      // [HT-2.7] After the login reply a RESPONSE never has a body: its length
      // field is the status. Reading `length` bytes here would eat the next
      // frame. The login reply (length 1, one status byte [HT-2.1]) is the
      // only RESPONSE with a body.
      _rxPhase = RX_HEADER;
      deliver(0);
      return;
    }
    if (_rxLen == 0) {
      _rxPhase = RX_HEADER;
      deliver(0);
      return;
    }
    // Too big for the buffer: skip the body but keep the frame boundary.
    _rxPhase = _rxLen > HYPERTCP_RX_BUFFER ? RX_SKIP : RX_BODY;
  }

  void onBodyComplete() {
    const RxPhase phase = _rxPhase;
    _rxPhase = RX_HEADER;
    if (phase == RX_BODY) {
      deliver(_rxLen);
      return;
    }
    // A skipped (oversize) message is still acknowledged, as an unchanged
    // device acknowledges every message [HT-2.5]; the sketch hears of it.
    if ((_rxType == HYPER_TCP_CMD_JSON_MESSAGE || _rxType == HYPER_TCP_CMD_BROADCAST) &&
        _state == STATE_AUTHENTICATED && !writeEmpty(HYPER_TCP_CMD_RESPONSE, _rxId))
      return;
    reportDrop(HYPERTCP_DROP_TOO_LARGE);
  }

  /** A whole frame is in: `bodyLen` bytes of it in _rx. */
  void deliver(uint16_t bodyLen) {
    switch (_rxType) {
      case HYPER_TCP_CMD_RESPONSE:
        if (_state == STATE_CONNECTED && _rxId == HYPERTCP_LOGIN_MSG_ID) {
          // One body byte [HT-2.1]; tolerate the status-in-length form too,
          // with length 0 meaning success [HT-2.7].
          const uint16_t success = HYPER_TCP_STATUS_SUCCESS;
          handleLoginReply(bodyLen == 1 ? _rx[0] : _rxLen == 0 ? success : _rxLen);
        } else {
          HookGuard guard(*this);
          onResponse(_rxId, _rxLen);
        }
        return;
      case HYPER_TCP_CMD_PING:
        writeEmpty(HYPER_TCP_CMD_RESPONSE, _rxId);  // [HT-2.5]
        return;
      case HYPER_TCP_CMD_JSON_MESSAGE:
      case HYPER_TCP_CMD_BROADCAST:
        handleEnvelope(bodyLen);
        return;
      case HYPER_TCP_CMD_REDIRECT:
        handleRedirect(bodyLen);
        return;
      default: {
        HookGuard guard(*this);
        onCustomFrame(_rxType, _rxId, _rx, bodyLen);
        return;
      }
    }
  }

  void handleLoginReply(uint16_t status) {
    _loginStatus = status;
    if (status == HYPER_TCP_STATUS_SUCCESS) {
      _state = STATE_AUTHENTICATED;
      _failures = 0;
      _redirectFailures = 0;
      _nextId = 1;  // [HT-2.3] the first message after login has msg_id 1 too
      _lastRx = _lastTx = millis();
      _probeSent = false;
      HookGuard guard(*this);
      onConnected();
      return;
    }
    const uint32_t gen = _gen;
    {
      HookGuard guard(*this);
      onLoginFailed(status);
    }
    if (gen != _gen) return;
    const bool fatal = status == HYPER_TCP_STATUS_INVALID_TOKEN || status == HYPER_TCP_STATUS_NOT_ALLOWED;
    closeConnection(fatal ? HYPERTCP_REASON_LOGIN_REFUSED : HYPERTCP_REASON_LOGIN_FAILED);
  }

  /** JSON_MESSAGE / BROADCAST body `{"from": "...", "payload": {...}}`. */
  void handleEnvelope(uint16_t len) {
    if (_state != STATE_AUTHENTICATED) {
      reportDrop(HYPERTCP_DROP_NOT_ONLINE);
      return;
    }
    if (!writeEmpty(HYPER_TCP_CMD_RESPONSE, _rxId)) return;  // [HT-2.5]
    namespace js = hypertcp::json;
    char* body = reinterpret_cast<char*>(_rx);
    body[len] = '\0';  // _rx has one spare byte for this
    const char* end = body + len;
    const char* obj = js::skipWs(body, end);
    js::Span from, payload;
    // [HT-2.6] ignored unless `from` is a string and `payload` an object.
    if (obj >= end || *obj != '{' || !js::isValue(body, len, kEnvelopeLevels) || !js::findMember(obj, end, "from", from) ||
        from.p[0] != '"' || !js::findMember(obj, end, "payload", payload) || payload.p[0] != '{') {
      reportDrop(HYPERTCP_DROP_MALFORMED);
      return;
    }
    // Terminate the payload in place: the byte after it belongs to the
    // envelope (',', '}' or whitespace), never to `from`.
    char* payloadText = const_cast<char*>(payload.p);
    payloadText[payload.n] = '\0';
    char* fromText = const_cast<char*>(from.p);
    if (js::unescape(from, fromText, from.n) < 0) {
      reportDrop(HYPERTCP_DROP_MALFORMED);
      return;
    }
    HookGuard guard(*this);
    if (_rxType == HYPER_TCP_CMD_BROADCAST)
      onBroadcastText(fromText, payloadText, payload.n);
    else
      onMessageText(fromText, payloadText, payload.n);
  }

  /** REDIRECT [HT-2.8]: JSON `{"server":"h","port":n}` or the older `h\0port`. */
  void handleRedirect(uint16_t len) {
    namespace js = hypertcp::json;
    char* body = reinterpret_cast<char*>(_rx);
    body[len] = '\0';
    const char* host = NULL;
    uint16_t port = _port;  // a redirect without a port keeps the current one
    const char* nul = static_cast<const char*>(memchr(body, '\0', len));
    if (nul) {
      // host\0port; tolerate a trailing NUL after the port digits.
      size_t portLen = len - static_cast<size_t>(nul - body) - 1;
      if (portLen > 0 && nul[portLen] == '\0') --portLen;
      if (nul != body && js::parsePort(nul + 1, portLen, port)) host = body;
    } else {
      const char* end = body + len;
      const char* obj = js::skipWs(body, end);
      js::Span server, portValue;
      if (obj < end && *obj == '{' && js::isValue(body, len, kEnvelopeLevels) && js::findMember(obj, end, "server", server) &&
          server.p[0] == '"') {
        bool portOk = true;
        if (js::findMember(obj, end, "port", portValue)) {
          if (portValue.p[0] == '"')  // tolerate "port": "8080"
            portOk = js::parsePort(portValue.p + 1, portValue.n - 2, port);
          else
            portOk = js::parsePort(portValue.p, portValue.n, port);
        }
        char* hostText = const_cast<char*>(server.p);
        if (portOk && js::unescape(server, hostText, server.n) > 0) host = hostText;
      }
    }
    if (!host || strlen(host) > HYPERTCP_MAX_HOST) {
      reportDrop(HYPERTCP_DROP_MALFORMED);
      return;
    }
    // Copy now: the receive buffer is reused by the next frame (the original
    // kept a pointer into a JSON document that was freed right after).
    memcpy(_host, host, strlen(host) + 1);
    _port = port;
    _redirected = true;
    _redirectFailures = 0;
    const uint32_t gen = _gen;
    {
      HookGuard guard(*this);
      onRedirect(_host, _port);
    }
    if (gen == _gen) closeConnection(HYPERTCP_REASON_REDIRECT);
  }

  // --- sending -------------------------------------------------------------

  /** [HT-1.5]-style ids: count up, skip 0 on wrap. */
  uint16_t nextId() {
    const uint16_t id = _nextId;
    _nextId = _nextId == 0xFFFF ? 1 : static_cast<uint16_t>(_nextId + 1);
    return id;
  }

  bool sendText(uint8_t type, const char* targetId, const char* payloadJson) {
    if (!payloadJson) return false;
    namespace js = hypertcp::json;
    const size_t n = strlen(payloadJson);
    const char* end = payloadJson + n;
    const char* start = js::skipWs(payloadJson, end);
    const char* stop = js::skipValue(start, end);
    if (!stop || js::skipWs(stop, end) != end) return false;  // not one JSON value: refuse [HT-4.1]
    CopyFill fill = {start, static_cast<size_t>(stop - start)};
    return sendEnvelopeWith(type, targetId, fill.len, fill);
  }

  bool sendLogin() {
    hypertcp::json::Writer w(reinterpret_cast<char*>(_tx) + HYPERTCP_HEADER_SIZE, HYPERTCP_TX_BUFFER);
    if (_deviceId[0]) {
      // [HT-2.2] JSON form, claiming a device id.
      w.raw("{\"token\":");
      w.str(_token);
      w.raw(",\"device_id\":");
      w.str(_deviceId);
      w.ch('}');
    } else {
      w.raw(_token);  // [HT-2.1] raw token bytes: no NUL, not JSON
    }
    if (!w.ok()) {  // cannot happen with the default sizes; a configuration error otherwise
      _loginStatus = HYPER_TCP_STATUS_ILLEGAL_COMMAND_BODY;
      closeConnection(HYPERTCP_REASON_LOGIN_REFUSED);
      return false;
    }
    return writeFrame(HYPER_TCP_CMD_LOGIN, HYPERTCP_LOGIN_MSG_ID, static_cast<uint16_t>(w.length()));
  }

  bool sendBuilt(uint8_t type, uint16_t length) {
    const uint16_t id = nextId();
    if (!writeFrame(type, id, length)) return false;
    _lastMessageId = id;
    return true;
  }

  /** Writes the frame whose body is already at _tx + 5, in one write(). */
  bool writeFrame(uint8_t type, uint16_t id, uint16_t length) {
    if (_state != STATE_CONNECTED && _state != STATE_AUTHENTICATED) return false;
    _tx[0] = type;
    _tx[1] = static_cast<uint8_t>(id >> 8);
    _tx[2] = static_cast<uint8_t>(id);
    _tx[3] = static_cast<uint8_t>(length >> 8);
    _tx[4] = static_cast<uint8_t>(length);
    return writeAll(_tx, HYPERTCP_HEADER_SIZE + static_cast<size_t>(length));
  }

  /** A body-less frame (PING, RESPONSE), built apart from _tx. */
  bool writeEmpty(uint8_t type, uint16_t id) {
    if (_state != STATE_CONNECTED && _state != STATE_AUTHENTICATED) return false;
    const uint8_t h[HYPERTCP_HEADER_SIZE] = {type, static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id), 0, 0};
    return writeAll(h, sizeof h);
  }

  bool writeAll(const uint8_t* data, size_t n) {
    if (_transport.write(data, n) != n) {
      // A short write leaves a partial frame on the wire: the stream is
      // unusable, so start over on a new connection.
      closeConnection(HYPERTCP_REASON_WRITE_FAILED);
      return false;
    }
    _lastTx = millis();
    return true;
  }

  // --- members -----------------------------------------------------------

  /** An envelope (`{"from":…,"payload":…}`, a REDIRECT object) is one level
   *  above the payload, which may nest HYPERTCP_JSON_MAX_DEPTH levels. */
  static constexpr unsigned kEnvelopeLevels = HYPERTCP_JSON_MAX_DEPTH + 1;

  Transport& _transport;
  ProtocolState _state = STATE_DISCONNECTED;
  bool _want = false;  // keep (re)connecting
  uint8_t _hookDepth = 0;
  uint32_t _gen = 0;  // bumped whenever a connection ends

  char _home[HYPERTCP_MAX_HOST + 1];  // the server given to connect()
  uint16_t _homePort = 0;
  char _host[HYPERTCP_MAX_HOST + 1];  // where we connect now (differs after REDIRECT)
  uint16_t _port = 0;
  bool _redirected = false;
  uint8_t _redirectFailures = 0;
  char _token[HYPERTCP_MAX_TOKEN + 1];
  char _deviceId[HYPERTCP_MAX_DEVICE_ID + 1];

  uint32_t _kaInterval = HYPERTCP_DEFAULT_KEEPALIVE_MS;
  uint32_t _kaTimeout = HYPERTCP_DEFAULT_HEARTBEAT_TIMEOUT_MS;
  uint32_t _loginTimeout = HYPERTCP_DEFAULT_LOGIN_TIMEOUT_MS;
  uint32_t _connectTimeout = HYPERTCP_DEFAULT_CONNECT_TIMEOUT_MS;
  uint32_t _backoffMin = HYPERTCP_DEFAULT_BACKOFF_MIN_MS;
  uint32_t _backoffMax = HYPERTCP_DEFAULT_BACKOFF_MAX_MS;

  uint32_t _nextAttemptAt = 0;
  uint32_t _loginSentAt = 0;
  uint32_t _lastRx = 0;
  uint32_t _lastTx = 0;
  bool _probeSent = false;
  uint8_t _failures = 0;
  uint32_t _attempts = 0;
  uint32_t _rng = 0;
  uint16_t _loginStatus = 0;
  uint16_t _nextId = 1;
  uint16_t _lastMessageId = 0;

  RxPhase _rxPhase = RX_HEADER;
  uint8_t _hdr[HYPERTCP_HEADER_SIZE];
  uint8_t _hdrFill = 0;
  uint8_t _rxType = 0;
  uint16_t _rxId = 0;
  uint16_t _rxLen = 0;
  uint16_t _rxFill = 0;
  uint8_t _rx[HYPERTCP_RX_BUFFER + 1];  // +1: room to NUL-terminate a full body
  uint8_t _tx[HYPERTCP_HEADER_SIZE + HYPERTCP_TX_BUFFER + 1];  // +1: serializeJson's NUL
};

#endif  // HYPERTCP_CORE_H
