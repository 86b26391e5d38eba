/**
 * @file HyperTCPProtocol.h
 * @brief The header a sketch includes: drop-in replacement for the original
 *        HyperTCPProtocol.h (same classes, enums and methods).
 *
 *   #include "HyperTCPProtocol.h"
 *   WiFiClient wifiClient;
 *   HyperTCPTransport<WiFiClient> myTransport(wifiClient);
 *   HyperTCPProtocol<HyperTCPTransport<WiFiClient>> myProtocol(myTransport);
 *   myProtocol.connect("token", "192.168.1.10", 8080);   // in setup()
 *   myProtocol.run();                                     // in loop()
 *
 * The protocol engine is HyperTCPCore (no JSON library needed). When
 * ArduinoJson (v6 or v7) is available, HyperTCPProtocol adds the original's
 * JsonObject API: sendMessage/broadcastMessage/sendToServer taking a
 * JsonObject (const or not, temporaries included) and the virtual
 * onMessageReceived/onBroadcastMessage(const char*, JsonObject&).
 *
 * How ArduinoJson is found:
 *  - Arduino builds (ARDUINO defined): included unconditionally, because the
 *    Arduino build system only adds a library to the include path when an
 *    #include of it fails during library discovery; __has_include() never
 *    fails, so it would always say "no" (arduino/arduino-cli#1650). The
 *    dependency is declared in library.properties, so it is installed with
 *    this library. Define HYPERTCP_NO_ARDUINOJSON to build without it.
 *  - Elsewhere (host builds, tests): __has_include(<ArduinoJson.h>).
 */
#ifndef HyperTCPProtocol_h
#define HyperTCPProtocol_h

#include "HyperTCPConfig.h"
#include "HyperTCPCore.h"
#include "HyperTCPTransport.h"

#if defined(HYPERTCP_NO_ARDUINOJSON)
#define HYPERTCP_HAS_ARDUINOJSON 0
#elif defined(ARDUINO)
#include <ArduinoJson.h>
#define HYPERTCP_HAS_ARDUINOJSON 1
#elif defined(__has_include)
#if __has_include(<ArduinoJson.h>)
#include <ArduinoJson.h>
#define HYPERTCP_HAS_ARDUINOJSON 1
#else
#define HYPERTCP_HAS_ARDUINOJSON 0
#endif
#else
#define HYPERTCP_HAS_ARDUINOJSON 0
#endif

#if HYPERTCP_HAS_ARDUINOJSON
#include "HyperTCPArduinoJson.h"
#else

/** Without ArduinoJson: the core as is (text API and text callbacks). */
template <class Transport>
class HyperTCPProtocol : public HyperTCPCore<Transport> {
 public:
  explicit HyperTCPProtocol(Transport& transport) : HyperTCPCore<Transport>(transport) {}
};

#endif  // HYPERTCP_HAS_ARDUINOJSON

#endif  // HyperTCPProtocol_h
