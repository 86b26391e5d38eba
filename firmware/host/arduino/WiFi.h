// Host shim (not part of the Arduino library): enough of WiFi.h for
// sketch-like host programs. The host is always "connected".
#ifndef HYPERTCP_HOST_WIFI_H
#define HYPERTCP_HOST_WIFI_H

#include "Arduino.h"
#include "WiFiClient.h"

enum wl_status_t { WL_IDLE_STATUS = 0, WL_CONNECTED = 3 };

class HostWiFi {
 public:
  void begin(const char*, const char*) {}
  wl_status_t status() const { return WL_CONNECTED; }
  IPAddress localIP() const { return IPAddress(127, 0, 0, 1); }
};

inline HostWiFi WiFi;

#endif
