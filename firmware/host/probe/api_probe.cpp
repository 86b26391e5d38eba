/*
 * api_probe: which sending calls compile (host build only, used by
 * test/firmware/vendor.test.ts).
 *
 * Built once against the original HyperTCPProtocol.h and once against this
 * library's, with ArduinoJson 6 or 7. For each sending function and each kind
 * of argument a sketch may pass, it prints `function(argument) 1` when the
 * call compiles (overload resolution succeeds, unambiguously) and `... 0` when
 * it does not. Every call that compiles against the original must compile
 * against ours: the library is a drop-in replacement.
 */
#include <Arduino.h>
#include <WiFiClient.h>

#include <type_traits>
#include <utility>

#include "HyperTCPProtocol.h"

typedef HyperTCPProtocol<HyperTCPTransport<WiFiClient>> Protocol;

#if ARDUINOJSON_VERSION_MAJOR >= 7
typedef JsonDocument Document;
#else
typedef DynamicJsonDocument Document;
#endif

// A detector per function: true when the call with an argument of type A
// (A& for an lvalue, A for a temporary) resolves.
#define PROBE(Name, call)                                               \
  template <typename A, typename = void>                                \
  struct Name : std::false_type {};                                     \
  template <typename A>                                                 \
  struct Name<A, decltype(void(call))> : std::true_type {};

PROBE(SendToServer, std::declval<Protocol&>().sendToServer(std::declval<A>()))
PROBE(SendMessage, std::declval<Protocol&>().sendMessage("target", std::declval<A>()))
PROBE(BroadcastMessage, std::declval<Protocol&>().broadcastMessage(std::declval<A>()))

typedef decltype(std::declval<Document&>()["key"]) MemberProxy;
typedef decltype(std::declval<JsonArray&>()[0]) ElementProxy;

template <typename A>
void row(const char* argument) {
  printf("sendToServer(%s) %d\n", argument, SendToServer<A>::value ? 1 : 0);
  printf("sendMessage(target, %s) %d\n", argument, SendMessage<A>::value ? 1 : 0);
  printf("broadcastMessage(%s) %d\n", argument, BroadcastMessage<A>::value ? 1 : 0);
}

int main() {
  row<JsonObject&>("JsonObject lvalue");
  row<JsonObject>("JsonObject temporary");
  row<const JsonObject&>("const JsonObject");
  row<JsonObjectConst>("JsonObjectConst");
  row<JsonVariant&>("JsonVariant lvalue");
  row<JsonVariant>("JsonVariant temporary");
  row<const JsonVariant&>("const JsonVariant");
  row<JsonVariantConst>("JsonVariantConst");
  row<Document&>("document");
  row<const Document&>("const document");
  row<MemberProxy>("doc[key]");
  row<ElementProxy>("array[0]");
  row<JsonArray&>("JsonArray");
  row<const char*>("const char*");
  row<char*>("char*");
  row<const char (&)[8]>("string literal");
  row<std::nullptr_t>("nullptr");
  row<int>("int");
  return 0;
}
