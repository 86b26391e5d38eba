/*
 * original_device: the original HyperTCPProtocol.h, unchanged, as a test
 * device (host build only; used by test/firmware/original.test.ts).
 *
 * Built against ../shared/vendor/hyper-tcp-ab3c359 (on the include path,
 * never copied) and ArduinoJson 6 or 7, with this project's Arduino shim.
 * It does what a sketch written for the original does: connect() once, then
 * run() from loop(), sending through the original's calls. It never
 * reconnects by itself, as a sketch that does not check run() would not.
 *
 * Arguments: HOST PORT TOKEN
 *
 * stdout, one event per line:
 *   CONNECT_RESULT ok=0|1              (the blocking connect(); also after `connect`)
 *   RUN value=0|1                      (whenever run()'s result changes; first after connect)
 *   MSG from=F payload=JSON            (onMessageReceived)
 *   BCAST from=F payload=JSON          (onBroadcastMessage)
 *   PING id=ID                         (the original's own 30 s keepalive went out)
 *
 * stdin, one command per line, each answered by one line:
 *   server JSON       -> SENT ok=0|1 id=ID   sendToServer(doc.as<JsonObject>())
 *   send TARGET JSON  -> SENT ok=0|1 id=ID   sendMessage(target, object), object a JsonObject&
 *   text TARGET JSON  -> SENT ok=0|1 id=ID   sendMessage(target, "json text")
 *   bcast JSON        -> SENT ok=0|1 id=ID   broadcastMessage(object)
 *   connect           -> CONNECT_RESULT ok=0|1
 *   state             -> STATE run=0|1 connected=0|1 state=N
 *   quit              -> BYE, then exit
 */
#include <Arduino.h>
#include <WiFiClient.h>

#include <string>

#include "../device/line_io.h"
#include "HyperTCPProtocol.h"

namespace {

typedef HyperTCPTransport<WiFiClient> Transport;

#if ARDUINOJSON_VERSION_MAJOR >= 7
#define MAKE_DOCUMENT(name) JsonDocument name
#else
#define MAKE_DOCUMENT(name) DynamicJsonDocument name(4096)
#endif

class Device : public HyperTCPProtocol<Transport> {
 public:
  explicit Device(Transport& transport) : HyperTCPProtocol<Transport>(transport) {}

  // The original keeps these protected; a sketch's subclass may read them.
  bool socketConnected() { return _transport.connected(); }
  int state() const { return _state; }
  uint16_t lastId() const { return _msgId; }

  void onMessageReceived(const char* from, JsonObject& payload) override { show("MSG", from, payload); }
  void onBroadcastMessage(const char* from, JsonObject& payload) override { show("BCAST", from, payload); }

 private:
  void show(const char* event, const char* from, JsonObject& payload) {
    std::string text;
    serializeJson(payload, text);
    emit("%s from=%s payload=%s", event, from, oneLine(text.data(), text.size()).c_str());
  }
};

WiFiClient client;
Transport transport(client);
Device device(transport);
std::string host, token;
uint16_t port = 0;
uint16_t reportedId = 0;

std::string word(std::string& rest) {
  size_t space = rest.find(' ');
  std::string w = rest.substr(0, space);
  rest = space == std::string::npos ? std::string() : rest.substr(space + 1);
  return w;
}

void connect() {
  bool ok = device.connect(token.c_str(), host.c_str(), port);
  emit("CONNECT_RESULT ok=%d", ok ? 1 : 0);
}

void sent(bool ok) {
  reportedId = device.lastId();
  emit("SENT ok=%d id=%u", ok ? 1 : 0, reportedId);
}

bool command(const std::string& line) {
  std::string rest = line;
  std::string cmd = word(rest);
  if (cmd == "quit") {
    emit("BYE");
    return false;
  }
  if (cmd == "connect") {
    connect();
  } else if (cmd == "state") {
    emit("STATE run=%d connected=%d state=%d", device.run() ? 1 : 0, device.socketConnected() ? 1 : 0,
         device.state());
  } else if (cmd == "text") {
    std::string target = word(rest);
    sent(device.sendMessage(target.c_str(), rest.c_str()));
  } else if (cmd == "server" || cmd == "send" || cmd == "bcast") {
    std::string target = cmd == "send" ? word(rest) : std::string();
    MAKE_DOCUMENT(doc);
    if (deserializeJson(doc, rest)) {
      emit("ERR not JSON: %s", rest.c_str());
      return true;
    }
    JsonObject object = doc.as<JsonObject>();
    if (cmd == "server")
      sent(device.sendToServer(doc.as<JsonObject>()));
    else if (cmd == "send")
      sent(device.sendMessage(target.c_str(), object));
    else
      sent(device.broadcastMessage(object));
  } else {
    emit("ERR unknown command: %s", line.c_str());
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: original_device HOST PORT TOKEN\n");
    return 2;
  }
  host = argv[1];
  port = static_cast<uint16_t>(atoi(argv[2]));
  token = argv[3];
  connect();
  int lastRun = -1;
  LineReader input;
  for (;;) {
    const int running = device.run() ? 1 : 0;
    if (running != lastRun) emit("RUN value=%d", running);
    lastRun = running;
    if (device.lastId() != reportedId) {
      // Not sent by a command: the original's keepalive PING.
      reportedId = device.lastId();
      emit("PING id=%u", reportedId);
    }
    if (!input.poll(2, command)) return 0;
  }
}
