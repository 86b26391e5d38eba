/**
 * @file HyperTCPArduinoJson.h
 * @brief The thin JsonObject layer over HyperTCPCore (ArduinoJson v6 or v7).
 *
 * Included by HyperTCPProtocol.h only when ArduinoJson is available; include
 * HyperTCPProtocol.h, not this file. Everything protocol-related lives in the
 * core: this layer only converts between JsonObject and JSON text.
 */
#ifndef HYPERTCP_ARDUINOJSON_H
#define HYPERTCP_ARDUINOJSON_H

#include <ArduinoJson.h>

#include "HyperTCPCore.h"

#if !defined(ARDUINOJSON_VERSION_MAJOR) || ARDUINOJSON_VERSION_MAJOR < 6
#error "HyperTCP's JsonObject API needs ArduinoJson 6 or 7 (or define HYPERTCP_NO_ARDUINOJSON)"
#endif

/** Capacity of the document incoming payloads are parsed into, with
 *  ArduinoJson 6 (a StaticJsonDocument member: no heap). ArduinoJson 7 sizes
 *  its document by itself; the payload is at most HYPERTCP_RX_BUFFER bytes,
 *  which bounds what it allocates. */
#ifndef HYPERTCP_JSON_DOC_SIZE
#define HYPERTCP_JSON_DOC_SIZE 1024
#endif

template <class Transport>
class HyperTCPProtocol : public HyperTCPCore<Transport> {
  typedef HyperTCPCore<Transport> Core;

 public:
  explicit HyperTCPProtocol(Transport& transport) : Core(transport) {}

  // The JSON-text overloads of the core stay available.
  using Core::broadcastMessage;
  using Core::sendMessage;
  using Core::sendToServer;

  // By value, so that both lvalues and temporaries such as
  // doc.as<JsonObject>() are accepted, const or not. (The original took
  // `JsonObject&`, which rejects the temporary in its own README example.)
  // A null object (e.g. as<JsonObject>() of a document that is not an
  // object) is refused rather than sent as `"payload":null`.

  bool sendMessage(const char* targetId, JsonObjectConst payload) {
    return sendJson(HYPER_TCP_CMD_JSON_MESSAGE, targetId, payload);
  }
  bool sendMessage(const char* targetId, JsonObject payload) {
    return sendMessage(targetId, JsonObjectConst(payload));
  }

  bool broadcastMessage(JsonObjectConst payload) { return sendJson(HYPER_TCP_CMD_BROADCAST, "broadcast", payload); }
  bool broadcastMessage(JsonObject payload) { return broadcastMessage(JsonObjectConst(payload)); }

  bool sendToServer(JsonObjectConst payload) { return sendJson(HYPER_TCP_CMD_JSON_MESSAGE, "server", payload); }
  bool sendToServer(JsonObject payload) { return sendToServer(JsonObjectConst(payload)); }

  /** Override to handle messages (same signature as the original). The
   *  object lives in a document that the next message reuses. */
  virtual void onMessageReceived(const char* from, JsonObject& payload) {
    Serial.print("Message from: ");
    Serial.println(from);
    Serial.print("Payload: ");
    serializeJson(payload, Serial);
    Serial.println();
  }

  /** Override to handle broadcasts (same signature as the original). */
  virtual void onBroadcastMessage(const char* from, JsonObject& payload) {
    Serial.print("Broadcast from: ");
    Serial.println(from);
    Serial.print("Payload: ");
    serializeJson(payload, Serial);
    Serial.println();
  }

 protected:
  // The core hands over the payload's text; parse it and call the JsonObject
  // callbacks. (A subclass that overrides these gets the text instead.)
  void onMessageText(const char* from, const char* payloadJson, size_t length) override {
    dispatch(false, from, payloadJson, length);
  }
  void onBroadcastText(const char* from, const char* payloadJson, size_t length) override {
    dispatch(true, from, payloadJson, length);
  }

 private:
  struct SerializeFill {
    JsonObjectConst object;
    size_t operator()(char* dst, size_t cap) const { return serializeJson(object, dst, cap); }
  };

  bool sendJson(uint8_t type, const char* targetId, JsonObjectConst payload) {
    if (payload.isNull()) return false;
    SerializeFill fill = {payload};
    // Measured first, then serialised straight into the frame buffer: no
    // intermediate document or string.
    return this->sendEnvelopeWith(type, targetId, measureJson(payload), fill);
  }

  void dispatch(bool broadcast, const char* from, const char* text, size_t length) {
    // (The core has already checked the text is one JSON object, nested at
    // most HYPERTCP_JSON_MAX_DEPTH deep; ArduinoJson applies its own default
    // nesting limit. No options are passed: their spelling changed within v6.)
    DeserializationError error = deserializeJson(_doc, text, length);
    if (error) {
      this->reportDrop(error == DeserializationError::NoMemory ? HYPERTCP_DROP_NO_MEMORY : HYPERTCP_DROP_MALFORMED);
      return;
    }
    JsonObject payload = _doc.as<JsonObject>();
    if (payload.isNull()) {  // the core already checked it is an object; be safe
      this->reportDrop(HYPERTCP_DROP_MALFORMED);
      return;
    }
    if (broadcast)
      onBroadcastMessage(from, payload);
    else
      onMessageReceived(from, payload);
  }

#if ARDUINOJSON_VERSION_MAJOR >= 7
  JsonDocument _doc;
#else
  StaticJsonDocument<HYPERTCP_JSON_DOC_SIZE> _doc;
#endif
};

#endif  // HYPERTCP_ARDUINOJSON_H
