/*
 * hypertcp_device: the test device used by test/firmware (host build only).
 *
 * Runs one or more HyperTCPProtocol instances (each with its own WiFiClient
 * and transport) in one loop, like a sketch's loop(), and speaks a small
 * line protocol so a test can drive it and wait for what it reports.
 *
 * Arguments:
 *   --connect host:port:token[:deviceId]  one instance per flag: index 0, 1, ...
 *   --keepalive MS --heartbeat-timeout MS --login-timeout MS --connect-timeout MS
 *   --backoff MIN:MAX                     reconnect backoff in ms
 *   --blocking                            log in with the blocking connect()
 *                                         (default: connectAsync(), then run())
 *
 * stdout: one event per line, `NAME key=value ...`; `payload=` comes last and
 * runs to the end of the line (newlines inside it are turned into spaces):
 *   READY n=N
 *   CONNECTING i=I host=H port=P attempt=K
 *   LOGIN_OK i=I host=H port=P
 *   LOGIN_FAILED i=I status=S
 *   DISCONNECTED i=I reason=R            (R: see hyperTCPReasonName())
 *   REDIRECT i=I host=H port=P
 *   MSG i=I from=F payload=JSON
 *   BCAST i=I from=F payload=JSON
 *   ACK i=I id=ID status=S               (a RESPONSE to one of our frames)
 *   DROP i=I type=T id=ID len=L reason=R
 *   FRAME i=I type=T id=ID len=L hex=HEX (a command type the library does not know)
 *   CONNECT_RESULT i=I ok=0|1            (after a blocking connect())
 *
 * stdin: one command per line, each answered by exactly one line:
 *   send I TARGET JSON | server I JSON | bcast I JSON | raw I TYPE HEX
 *                          -> SENT i=I id=ID   or   SEND_FAILED i=I
 *   msgid I N              -> OK msgid         (next msg_id on this connection)
 *   state I                -> STATE i=I state=S retrying=0|1 attempts=K login_status=S host=H port=P
 *   disconnect I           -> OK disconnect
 *   connect I              -> CONNECT_RESULT i=I ok=0|1  (blocking connect(), same arguments)
 *   quit                   -> BYE, then exit
 * End of stdin also ends the program, so it never outlives its test.
 *
 * Built with ArduinoJson on the include path, messages arrive through the
 * JsonObject callbacks and what is sent goes through the JsonVariant
 * overloads (text that does not parse still goes to the text ones).
 */
#include <Arduino.h>
#include <WiFiClient.h>

#include <memory>
#include <string>
#include <vector>

#include "HyperTCPProtocol.h"
#include "line_io.h"

// The names and numbers of the original header [HT-1.2].
static_assert(HYPER_TCP_CMD_RESPONSE == 0 && HYPER_TCP_CMD_PING == 6 && HYPER_TCP_CMD_LOGIN == 29 &&
                  HYPER_TCP_CMD_JSON_MESSAGE == 30 && HYPER_TCP_CMD_REDIRECT == 41 &&
                  HYPER_TCP_CMD_BROADCAST == 50,
              "command numbers");
static_assert(HYPER_TCP_STATUS_SUCCESS == 200 && HYPER_TCP_STATUS_INVALID_TOKEN == 9 &&
                  HYPER_TCP_STATUS_NOT_AUTHENTICATED == 5 && HYPER_TCP_STATUS_TIMEOUT == 16 &&
                  HYPER_TCP_STATUS_QUOTA_LIMIT == 1 && HYPER_TCP_STATUS_ILLEGAL_COMMAND == 2 &&
                  HYPER_TCP_STATUS_NOT_ALLOWED == 6 && HYPER_TCP_STATUS_ILLEGAL_COMMAND_BODY == 11 &&
                  HYPER_TCP_STATUS_SERVER_ERROR == 19,
              "status numbers");

namespace {

const char* stateName(int s) {
  switch (s) {
    case 0: return "disconnected";
    case 1: return "connecting";
    case 2: return "connected";
    case 3: return "authenticated";
    case 4: return "refused";
  }
  return "unknown";
}

using Transport = HyperTCPTransport<WiFiClient>;

class Device : public HyperTCPProtocol<Transport> {
 public:
  Device(int index, Transport& transport) : HyperTCPProtocol<Transport>(transport), _index(index) {}

 protected:
  void onConnecting(const char* host, uint16_t port) override {
    emit("CONNECTING i=%d host=%s port=%u attempt=%u", _index, host, port, getConnectAttempts());
  }
  void onConnected() override {
    emit("LOGIN_OK i=%d host=%s port=%u", _index, getServerHost(), getServerPort());
  }
  void onDisconnected(HyperTCPDisconnectReason reason) override {
    emit("DISCONNECTED i=%d reason=%s", _index, hyperTCPReasonName(reason));
  }
  void onLoginFailed(uint16_t status) override { emit("LOGIN_FAILED i=%d status=%u", _index, status); }
  void onRedirect(const char* host, uint16_t port) override {
    emit("REDIRECT i=%d host=%s port=%u", _index, host, port);
  }
  void onResponse(uint16_t msgId, uint16_t status) override {
    emit("ACK i=%d id=%u status=%u", _index, msgId, status);
  }
  void onFrameDropped(uint8_t type, uint16_t msgId, uint16_t length, HyperTCPDropReason reason) override {
    emit("DROP i=%d type=%u id=%u len=%u reason=%s", _index, type, msgId, length, hyperTCPDropName(reason));
  }
  void onCustomFrame(uint8_t type, uint16_t msgId, const uint8_t* body, uint16_t length) override {
    std::string hex;
    static const char digits[] = "0123456789abcdef";
    for (uint16_t k = 0; k < length; ++k) {
      hex += digits[body[k] >> 4];
      hex += digits[body[k] & 0xF];
    }
    emit("FRAME i=%d type=%u id=%u len=%u hex=%s", _index, type, msgId, length, hex.c_str());
  }
#if defined(ARDUINOJSON_VERSION_MAJOR)
  // Built with ArduinoJson: messages come through the JsonObject callbacks,
  // shown as ArduinoJson serialises them.
  void onMessageReceived(const char* from, JsonObject& payload) override { show("MSG", from, payload); }
  void onBroadcastMessage(const char* from, JsonObject& payload) override { show("BCAST", from, payload); }

  void show(const char* event, const char* from, JsonObject payload) {
    std::string text(measureJson(payload) + 1, '\0');
    const size_t n = serializeJson(payload, &text[0], text.size());
    emit("%s i=%d from=%s payload=%s", event, _index, oneLine(from, strlen(from)).c_str(), oneLine(text.c_str(), n).c_str());
  }
#else
  void onMessageText(const char* from, const char* payload, size_t length) override {
    emit("MSG i=%d from=%s payload=%s", _index, oneLine(from, strlen(from)).c_str(),
         oneLine(payload, length).c_str());
  }
  void onBroadcastText(const char* from, const char* payload, size_t length) override {
    emit("BCAST i=%d from=%s payload=%s", _index, oneLine(from, strlen(from)).c_str(),
         oneLine(payload, length).c_str());
  }
#endif

 private:
  int _index;
};

struct Slot {
  Slot(int index, std::string h, uint16_t p, std::string t, std::string d)
      : transport(client), device(index, transport), host(std::move(h)), port(p), token(std::move(t)),
        deviceId(std::move(d)) {}
  WiFiClient client;
  Transport transport;
  Device device;
  std::string host;
  uint16_t port;
  std::string token;
  std::string deviceId;
};

std::vector<std::unique_ptr<Slot>> slots;

[[noreturn]] void usage(const char* why) {
  fprintf(stderr, "hypertcp_device: %s\n", why);
  exit(2);
}

uint32_t number(const char* s) {
  char* end;
  unsigned long v = strtoul(s, &end, 10);
  if (end == s || *end) usage("bad number");
  return static_cast<uint32_t>(v);
}

/** Splits off the next space-separated word of `rest`. */
std::string word(std::string& rest) {
  size_t start = rest.find_first_not_of(' ');
  if (start == std::string::npos) {
    rest.clear();
    return std::string();
  }
  size_t end = rest.find(' ', start);
  std::string w = rest.substr(start, end == std::string::npos ? std::string::npos : end - start);
  rest = end == std::string::npos ? std::string() : rest.substr(end + 1);
  return w;
}

Slot* slotAt(const std::string& w) {
  char* end;
  unsigned long i = strtoul(w.c_str(), &end, 10);
  if (w.empty() || *end || i >= slots.size()) return nullptr;
  return slots[i].get();
}

bool fromHex(const std::string& hex, std::vector<uint8_t>& out) {
  if (hex.size() % 2) return false;
  for (size_t k = 0; k < hex.size(); k += 2) {
    int hi = hypertcp::json::hexDigit(hex[k]);
    int lo = hypertcp::json::hexDigit(hex[k + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<uint8_t>(hi << 4 | lo));
  }
  return true;
}

void reportSend(int index, bool ok, Device& d) {
  if (ok)
    emit("SENT i=%d id=%u", index, d.getLastMessageId());
  else
    emit("SEND_FAILED i=%d", index);
}

/** Returns false on `quit`. */
bool command(std::string line) {
  std::string rest = line;
  std::string cmd = word(rest);
  if (cmd == "quit") {
    emit("BYE");
    return false;
  }
  std::string indexWord = word(rest);
  Slot* slot = slotAt(indexWord);
  if (!slot) {
    emit("ERR bad instance in: %s", line.c_str());
    return true;
  }
  const int i = atoi(indexWord.c_str());
  Device& d = slot->device;
  if (cmd == "send" || cmd == "server" || cmd == "bcast") {
    std::string target = cmd == "send" ? word(rest) : std::string("server");
#if defined(ARDUINOJSON_VERSION_MAJOR)
    // What parses is sent through the ArduinoJson API, as a JsonVariant;
    // the rest as text (which the library refuses if it is not JSON).
    HyperTCPJsonDocument<4096> doc;
    if (!deserializeJson(doc, rest)) {
      JsonVariant value = doc.as<JsonVariant>();
      const bool ok = cmd == "bcast" ? d.broadcastMessage(value) : d.sendMessage(target.c_str(), value);
      reportSend(i, ok, d);
      return true;
    }
#endif
    const bool ok = cmd == "bcast" ? d.broadcastMessage(rest.c_str()) : d.sendMessage(target.c_str(), rest.c_str());
    reportSend(i, ok, d);
  } else if (cmd == "raw") {
    uint32_t type = number(word(rest).c_str());
    std::vector<uint8_t> body;
    if (!fromHex(word(rest), body) || type > 255) {
      emit("ERR bad raw frame");
      return true;
    }
    reportSend(i, d.sendFrame(static_cast<uint8_t>(type), body.data(), static_cast<uint16_t>(body.size())), d);
  } else if (cmd == "msgid") {
    d.setNextMessageId(static_cast<uint16_t>(number(word(rest).c_str())));
    emit("OK msgid");
  } else if (cmd == "state") {
    emit("STATE i=%d state=%s retrying=%d attempts=%u login_status=%u host=%s port=%u", i, stateName(d.getState()),
         d.isRetrying() ? 1 : 0, d.getConnectAttempts(), d.getLoginStatus(), d.getServerHost(), d.getServerPort());
  } else if (cmd == "disconnect") {
    d.disconnect();
    emit("OK disconnect");
  } else if (cmd == "connect") {
    bool ok = d.connect(slot->token.c_str(), slot->host.c_str(), slot->port);
    emit("CONNECT_RESULT i=%d ok=%d", i, ok ? 1 : 0);
  } else {
    emit("ERR unknown command: %s", cmd.c_str());
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  uint32_t keepalive = 0, heartbeat = 0, loginTimeout = 0, connectTimeout = 0, backoffMin = 0, backoffMax = 0;
  bool haveKeepalive = false, haveHeartbeat = false, blocking = false;
  for (int k = 1; k < argc; ++k) {
    std::string a = argv[k];
    auto value = [&]() -> const char* {
      if (k + 1 >= argc) usage("missing value");
      return argv[++k];
    };
    if (a == "--connect") {
      // host:port:token[:deviceId]
      std::string spec = value();
      std::vector<std::string> parts;
      size_t start = 0;
      for (;;) {
        size_t colon = spec.find(':', start);
        parts.push_back(spec.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
        if (colon == std::string::npos) break;
        start = colon + 1;
      }
      if (parts.size() < 3 || parts.size() > 4) usage("--connect host:port:token[:deviceId]");
      const int index = static_cast<int>(slots.size());
      slots.emplace_back(new Slot(index, parts[0], static_cast<uint16_t>(number(parts[1].c_str())), parts[2],
                                  parts.size() == 4 ? parts[3] : std::string()));
    } else if (a == "--keepalive") {
      keepalive = number(value());
      haveKeepalive = true;
    } else if (a == "--heartbeat-timeout") {
      heartbeat = number(value());
      haveHeartbeat = true;
    } else if (a == "--login-timeout") {
      loginTimeout = number(value());
    } else if (a == "--connect-timeout") {
      connectTimeout = number(value());
    } else if (a == "--backoff") {
      std::string spec = value();
      size_t colon = spec.find(':');
      if (colon == std::string::npos) usage("--backoff MIN:MAX");
      backoffMin = number(spec.substr(0, colon).c_str());
      backoffMax = number(spec.substr(colon + 1).c_str());
    } else if (a == "--blocking") {
      blocking = true;
    } else {
      usage(("unknown argument " + a).c_str());
    }
  }
  if (slots.empty()) usage("no --connect");

  for (auto& s : slots) {
    Device& d = s->device;
    if (haveKeepalive || haveHeartbeat)
      d.setKeepAlive(haveKeepalive ? keepalive : HYPERTCP_DEFAULT_KEEPALIVE_MS,
                     haveHeartbeat ? heartbeat : HYPERTCP_DEFAULT_HEARTBEAT_TIMEOUT_MS);
    if (loginTimeout) d.setLoginTimeout(loginTimeout);
    if (connectTimeout) d.setConnectTimeout(connectTimeout);
    if (backoffMin) d.setReconnectBackoff(backoffMin, backoffMax);
    if (!s->deviceId.empty() && !d.setDeviceId(s->deviceId.c_str())) usage("device id too long");
  }
  emit("READY n=%zu", slots.size());

  for (size_t k = 0; k < slots.size(); ++k) {
    Slot& s = *slots[k];
    if (blocking) {
      bool ok = s.device.connect(s.token.c_str(), s.host.c_str(), s.port);
      emit("CONNECT_RESULT i=%zu ok=%d", k, ok ? 1 : 0);
    } else if (!s.device.connectAsync(s.token.c_str(), s.host.c_str(), s.port)) {
      usage("token or host too long");
    }
  }

  // The sketch's loop(): run every instance, then wait up to 2 ms for a
  // command (this wait is the loop's delay()).
  LineReader input;
  for (;;) {
    for (auto& s : slots) s->device.run();
    if (!input.poll(2, command)) return 0;
  }
}
