// A Blynk device for the gateway's tests: a sketch of the project's own, built on Linux against the
// Blynk library 1.x exactly as published (../shared/vendor/blynk-library-1.4.0, its src/ and linux/
// directories on the include path; nothing of it is copied here).
//
// It logs in with --token to --server:--port, writes a counter to V0 every BLYNK_V0_MS ms (default
// 1000), and prints one line per event on stdout (line-buffered):
//   connected / disconnected        BLYNK_CONNECTED(), BLYNK_DISCONNECTED()
//   write V<pin>: [value] [value]   what a BLYNK_WRITE handler received from the server
//   token invalid: giving up        the server refused the token; the program exits with status 2
// plus the library's own log lines (BLYNK_PRINT). It ends when its stdin is closed.

#define BLYNK_TEMPLATE_ID "TMPLhtgw"
#define BLYNK_TEMPLATE_NAME "hypertcp-gateway test device"
#define BLYNK_PRINT stdout

#include <BlynkApiLinux.h>
#include <BlynkSocket.h>
#include <BlynkOptionsParser.h>
#include <poll.h>
#include <signal.h>

static BlynkTransportSocket transport;
BlynkSocket Blynk(transport);

#include <BlynkWidgets.h>

static BlynkTimer timer;
static long counter = 0;

/** Whether stdin was closed (checked without blocking, once per loop). */
static bool stdinClosed() {
  struct pollfd p = {0, POLLIN, 0};
  if (poll(&p, 1, 0) <= 0) return false;
  char buf[64];
  return (p.revents & (POLLIN | POLLHUP)) != 0 && read(0, buf, sizeof buf) <= 0;
}

static void printWrite(int pin, const BlynkParam& param) {
  printf("write V%d:", pin);
  for (BlynkParam::iterator it = param.begin(); it < param.end(); ++it) printf(" [%s]", it.asStr());
  printf("\n");
}

BLYNK_WRITE_DEFAULT() { printWrite(request.pin, param); }

BLYNK_CONNECTED() { printf("connected\n"); }

BLYNK_DISCONNECTED() { printf("disconnected\n"); }

int main(int argc, char* argv[]) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  // A write to a connection the server closed fails with EPIPE instead of killing the program: the
  // library then reconnects, as a board's would.
  signal(SIGPIPE, SIG_IGN);
  const char* auth;
  const char* serv;
  uint16_t port;
  parse_options(argc, argv, auth, serv, port);
  const char* every = getenv("BLYNK_V0_MS");
  const unsigned long ms = every != NULL ? strtoul(every, NULL, 10) : 1000;
  Blynk.begin(auth, serv, port);
  timer.setInterval(ms, []() { Blynk.virtualWrite(V0, counter++); });
  while (!stdinClosed()) {
    Blynk.run();
    timer.run();
    if (Blynk.isTokenInvalid()) {
      printf("token invalid: giving up\n");
      return 2;
    }
  }
  return 0;
}
