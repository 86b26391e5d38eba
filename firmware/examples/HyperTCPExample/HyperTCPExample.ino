/*
 * HyperTCPExample: the original HyperTCP library's example, on an ESP32, with
 * this library in place of the original header. The calls are the original
 * ones (see the original README): only the placeholders below need filling
 * in. Needs the ArduinoJson library (6 or 7), installed with this one.
 *
 * Start the gateway (hypertcp-gateway) on a machine of your network, with a
 * device entry whose token is `authToken`, e.g. in its config file:
 *   "devices": [{ "id": "esp32-1", "token": "your_auth_token" }]
 * Then, with any MQTT client connected to the gateway's broker:
 *   - readings appear on       hypertcp/esp32-1/up
 *   - publish {"command":"control","device":"led","action":"toggle"}
 *     to                       hypertcp/esp32-1/dn   to toggle the LED
 *   - online/offline state on  hypertcp/esp32-1/status (retained)
 */
#include <WiFi.h>

#include "HyperTCPProtocol.h"

// ---- fill these in -------------------------------------------------------
const char* ssid = "your_wifi_ssid";
const char* password = "your_wifi_password";
const char* server = "192.168.1.100";        // the machine running hypertcp-gateway
const uint16_t port = 8080;                  // the gateway's HyperTCP port (default 8080)
const char* authToken = "your_auth_token";   // a token of the gateway's device registry
// ---------------------------------------------------------------------------

const int ledPin = 2;  // the on-board LED of most ESP32 dev boards

WiFiClient wifiClient;
HyperTCPTransport<WiFiClient> myTransport(wifiClient);

// Handle incoming messages by overriding the virtual callbacks.
class MyProtocolWithHandlers : public HyperTCPProtocol<HyperTCPTransport<WiFiClient>> {
 public:
  MyProtocolWithHandlers(HyperTCPTransport<WiFiClient>& transport)
      : HyperTCPProtocol<HyperTCPTransport<WiFiClient>>(transport) {}

  void onMessageReceived(const char* from, JsonObject& payload) override {
    Serial.print("Message from: ");
    Serial.println(from);
    Serial.print("Payload: ");
    serializeJson(payload, Serial);
    Serial.println();

    const char* command = payload["command"];
    const char* action = payload["action"];
    if (command && action && strcmp(command, "control") == 0) {
      if (strcmp(action, "toggle") == 0) digitalWrite(ledPin, !digitalRead(ledPin));
      if (strcmp(action, "on") == 0) digitalWrite(ledPin, HIGH);
      if (strcmp(action, "off") == 0) digitalWrite(ledPin, LOW);
    }
  }

  void onBroadcastMessage(const char* from, JsonObject& payload) override {
    Serial.print("Broadcast from: ");
    Serial.println(from);
    Serial.print("Payload: ");
    serializeJson(payload, Serial);
    Serial.println();
  }

  // Not in the original: told about every (re)login and every failure.
  void onConnected() override { Serial.println("Logged in"); }
  void onLoginFailed(uint16_t status) override {
    Serial.print("Login refused, status ");
    Serial.println(status);  // 9 = invalid token: the library stops retrying
  }
};

MyProtocolWithHandlers myProtocol(myTransport);

void setup() {
  Serial.begin(115200);
  pinMode(ledPin, OUTPUT);

  Serial.print("Connecting to WiFi");
  WiFi.begin(ssid, password);
  while (WiFi.status() != WL_CONNECTED) {
    delay(500);
    Serial.print(".");
  }
  Serial.print(" connected, IP ");
  Serial.println(WiFi.localIP());

  // Optional: log in with the JSON form and claim a device id the token allows.
  // myProtocol.setDeviceId("esp32-1");

  // Blocks until logged in (or about 10 s). Either way the library keeps the
  // connection up from now on: run() reconnects, with backoff, whenever the
  // connection drops or the gateway restarts, and follows redirects.
  if (myProtocol.connect(authToken, server, port)) {
    Serial.println("Connected!");
  } else {
    Serial.println("Not connected yet; retrying in the background");
  }
}

void loop() {
  myProtocol.run();  // call this regularly

  static unsigned long lastReading = 0;
  if (myProtocol.isOnline() && millis() - lastReading > 10000) {
    lastReading = millis();

    // Method 1: using JsonObject
    // StaticJsonDocument<256> with ArduinoJson 6, JsonDocument with 7.
    HyperTCPJsonDocument<256> doc;
    doc["temperature"] = 25.6;
    doc["uptime"] = millis() / 1000;
    myProtocol.sendMessage("server", doc.as<JsonObject>());

    // Method 2: using a JSON string
    const char* payload = "{\"temperature\": 25.6}";
    myProtocol.sendMessage("server", payload);
  }

  static unsigned long lastBroadcast = 0;
  if (myProtocol.isOnline() && millis() - lastBroadcast > 60000) {
    lastBroadcast = millis();

    // Method 3: broadcast to all devices
    HyperTCPJsonDocument<256> broadcastDoc;
    broadcastDoc["notification"] = "System update available";
    myProtocol.broadcastMessage(broadcastDoc.as<JsonObject>());

    // Method 4: send directly to the server
    HyperTCPJsonDocument<256> serverDoc;
    serverDoc["status"] = "online";
    myProtocol.sendToServer(serverDoc.as<JsonObject>());
  }

  delay(10);
}
