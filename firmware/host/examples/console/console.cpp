/*
 * HyperTCP console example: the example sketch's flow on a PC (host build,
 * no board, no ArduinoJson). Uses the same classes and calls as a sketch.
 *
 *   console HOST PORT TOKEN [DEVICE_ID]
 *
 * Connects and logs in, sends a reading to the server every 10 s, prints
 * what arrives, and sends each line typed on stdin to the server as JSON
 * (e.g. {"temperature": 21.5}). Ctrl-D quits.
 */
#include <Arduino.h>
#include <WiFi.h>
#include <poll.h>
#include <unistd.h>

#include "HyperTCPProtocol.h"

using Transport = HyperTCPTransport<WiFiClient>;

// Without ArduinoJson the library hands messages over as JSON text.
class ConsoleProtocol : public HyperTCPProtocol<Transport> {
 public:
  explicit ConsoleProtocol(Transport& transport) : HyperTCPProtocol<Transport>(transport) {}

 protected:
  void onConnected() override {
    printf("Connected to %s:%u\n", getServerHost(), getServerPort());
    sendToServer("{\"status\":\"online\"}");
  }
  void onDisconnected(HyperTCPDisconnectReason reason) override {
    printf("Disconnected (%s)%s\n", hyperTCPReasonName(reason),
           getState() == STATE_DISCONNECTED ? ", will reconnect" : "");
  }
  void onLoginFailed(uint16_t status) override { printf("Login failed, status %u\n", status); }
  void onMessageText(const char* from, const char* payload, size_t length) override {
    printf("Message from %s: %.*s\n", from, static_cast<int>(length), payload);
  }
  void onBroadcastText(const char* from, const char* payload, size_t length) override {
    printf("Broadcast from %s: %.*s\n", from, static_cast<int>(length), payload);
  }
};

WiFiClient wifiClient;
Transport myTransport(wifiClient);
ConsoleProtocol myProtocol(myTransport);

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s HOST PORT TOKEN [DEVICE_ID]\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const char* host = argv[1];
  const uint16_t port = static_cast<uint16_t>(atoi(argv[2]));
  if (argc > 4) myProtocol.setDeviceId(argv[4]);

  // setup(): a blocking connect like the sketch's; run() reconnects later.
  if (!myProtocol.connect(argv[3], host, port)) printf("Not connected yet, retrying in the background\n");

  // loop()
  uint32_t lastReading = millis();
  char line[1024];
  size_t used = 0;
  for (;;) {
    myProtocol.run();
    if (myProtocol.isOnline() && millis() - lastReading >= 10000) {
      lastReading = millis();
      char json[96];
      snprintf(json, sizeof json, "{\"uptime\":%u}", millis() / 1000);
      myProtocol.sendToServer(json);
    }
    pollfd p = {0, POLLIN, 0};
    if (poll(&p, 1, 10) <= 0) continue;
    ssize_t n = read(0, line + used, sizeof line - 1 - used);
    if (n <= 0) break;
    used += static_cast<size_t>(n);
    char* nl;
    while ((nl = static_cast<char*>(memchr(line, '\n', used))) != nullptr) {
      *nl = '\0';
      if (*line) puts(myProtocol.sendToServer(line) ? "Sent" : "Not sent (offline or not JSON)");
      const size_t rest = used - static_cast<size_t>(nl + 1 - line);
      memmove(line, nl + 1, rest);
      used = rest;
    }
    if (used == sizeof line - 1) used = 0;  // an over-long line: drop it
  }
  myProtocol.disconnect();
  return 0;
}
