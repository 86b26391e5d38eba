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

#include <type_traits>

/** A JSON document for sketches that build on both ArduinoJson versions:
 *  `HyperTCPJsonDocument<256> doc;` is a StaticJsonDocument<256> with
 *  ArduinoJson 6 and a JsonDocument (which sizes itself) with 7, where the
 *  fixed-size documents are deprecated. */
#if ARDUINOJSON_VERSION_MAJOR >= 7
template <size_t Capacity>
using HyperTCPJsonDocument = JsonDocument;
#else
template <size_t Capacity>
using HyperTCPJsonDocument = StaticJsonDocument<Capacity>;
#endif

namespace hypertcp {
namespace json {

/** True for what ArduinoJson can read as a JSON value: JsonObject, JsonVariant
 *  and their const forms, documents, `doc["key"]`, `array[0]`, ... */
template <typename T>
struct IsArduinoJson : std::is_convertible<const T&, JsonVariantConst> {};

#if ARDUINOJSON_VERSION_MAJOR < 7
/** Bytes an ArduinoJson 6 document needs to parse the JSON text [p, p+n),
 *  copying its strings: one slot per array element or object member, and
 *  every string with its NUL (an upper bound: escapes only shrink strings,
 *  and ArduinoJson stores a repeated string once). */
inline size_t documentCapacity(const char* p, size_t n) {
  size_t slots = 0, strings = 0, stringBytes = 0;
  bool inString = false;
  for (const char* e = p + n; p < e; ++p) {
    const char c = *p;
    if (inString) {
      if (c == '\\') {
        ++p;
        stringBytes += 2;
      } else if (c == '"') {
        inString = false;
      } else {
        ++stringBytes;
      }
    } else if (c == '"') {
      inString = true;
      ++strings;
    } else if (c == ',' || c == '[' || c == '{') {
      ++slots;  // a ',' starts one more element; '[' / '{' the first (if any)
    }
  }
  return JSON_ARRAY_SIZE(slots) + stringBytes + strings;
}
#endif

}  // namespace json
}  // namespace hypertcp

template <class Transport>
class HyperTCPProtocol : public HyperTCPCore<Transport> {
  typedef HyperTCPCore<Transport> Core;

 public:
  explicit HyperTCPProtocol(Transport& transport) : Core(transport) {}

  // The JSON-text overloads of the core stay available.
  using Core::broadcastMessage;
  using Core::sendMessage;
  using Core::sendToServer;

  // Anything ArduinoJson reads as a value is accepted — a JsonObject (also a
  // temporary such as doc.as<JsonObject>(), which the original's
  // `JsonObject&` rejected in its own README example), a const one, a
  // JsonVariant, `doc["key"]`, a document — so that every call that compiles
  // against the original header compiles here. (Two by-value overloads for
  // JsonObject and JsonObjectConst made a JsonVariant ambiguous.) An object is
  // sent; a string is taken as JSON text, as the original's conversion to
  // `const char*` did; anything else (null, a number, an array) is refused.
  // JSON text (`const char*`) goes to the core's overloads.

  template <typename T, typename std::enable_if<hypertcp::json::IsArduinoJson<T>::value, int>::type = 0>
  bool sendMessage(const char* targetId, const T& payload) {
    return sendJson(HYPER_TCP_CMD_JSON_MESSAGE, targetId, payload);
  }

  template <typename T, typename std::enable_if<hypertcp::json::IsArduinoJson<T>::value, int>::type = 0>
  bool broadcastMessage(const T& payload) {
    return sendJson(HYPER_TCP_CMD_BROADCAST, "broadcast", payload);
  }

  template <typename T, typename std::enable_if<hypertcp::json::IsArduinoJson<T>::value, int>::type = 0>
  bool sendToServer(const T& payload) {
    return sendJson(HYPER_TCP_CMD_JSON_MESSAGE, "server", payload);
  }

  /** Override to handle messages (same signature as the original). The
   *  object lives in a document freed when the callback returns. */
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

  bool sendJson(uint8_t type, const char* targetId, JsonVariantConst value) {
    if (value.is<const char*>()) {
      const char* text = value.as<const char*>();
      return type == HYPER_TCP_CMD_BROADCAST ? Core::broadcastMessage(text) : Core::sendMessage(targetId, text);
    }
    JsonObjectConst payload = value.as<JsonObjectConst>();
    if (payload.isNull()) return false;
    SerializeFill fill = {payload};
    // Measured first, then serialised straight into the frame buffer: no
    // intermediate document or string.
    return this->sendEnvelopeWith(type, targetId, measureJson(payload), fill);
  }

  void dispatch(bool broadcast, const char* from, const char* text, size_t length) {
    // (The core has already checked the text is one JSON object, nested at
    // most HYPERTCP_JSON_MAX_DEPTH deep, ArduinoJson's own default nesting
    // limit. No options are passed: their spelling changed within v6.)
#if ARDUINOJSON_VERSION_MAJOR >= 7
    // Sizes itself; what it allocates is bounded by the text, at most
    // HYPERTCP_RX_BUFFER bytes.
    JsonDocument doc;
#else
    // Sized for this text, so that whatever fits the RX buffer is parsed;
    // freed when the callback returns. Capacity 0 means the heap is out.
    DynamicJsonDocument doc(hypertcp::json::documentCapacity(text, length));
#endif
    DeserializationError error = deserializeJson(doc, text, length);
    if (error) {
      this->reportDrop(error == DeserializationError::NoMemory ? HYPERTCP_DROP_NO_MEMORY : HYPERTCP_DROP_MALFORMED);
      return;
    }
    JsonObject payload = doc.as<JsonObject>();
    if (payload.isNull()) {  // the core already checked it is an object; be safe
      this->reportDrop(HYPERTCP_DROP_MALFORMED);
      return;
    }
    if (broadcast)
      onBroadcastMessage(from, payload);
    else
      onMessageReceived(from, payload);
  }
};

#endif  // HYPERTCP_ARDUINOJSON_H
