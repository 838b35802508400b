// The event-driven HTTP/1.1 server under the registry API and the admin API,
// on Boost.Beast and Asio. A few I/O threads own every socket; an idle or slow
// connection costs a socket, a timer and a small buffer, never a thread.
// Handlers (which may block: RocksDB reads, upstream fetches) run on a bounded
// worker pool, as do the reads of response bodies (BodySource::Next).
//
// Limits are applied while reading: the request head is read into a buffer of
// at most `max_head_bytes` (431 beyond), within `head_timeout` of its first
// byte (the connection is closed past it); the request line and the number of
// header fields are checked before any handler runs (400 / 431). Requests with
// a body are answered and the connection closed: the body is never read. A
// connection past `max_connections` (or the per-address cap) gets 503 and is
// closed. A response body that the client takes slower than
// `min_send_bytes_per_second` over `send_window` is cut.
//
// Thread-safety: Bind, then Serve on one thread; Stop and Drain from any.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <memory>
#include <string>

#include "oci/status.h"
#include "proxy/http_message.h"

namespace portcullis::proxy {

struct HttpEngineOptions {
  std::string name = "http";  // for log lines: "registry" or "admin"
  int io_threads = 2;          // event-loop threads, one loop (io_context) each
  int workers = 64;            // handler and body-read threads
  size_t max_queued = 4096;    // requests waiting for a worker; more → 503
  size_t max_connections = 16384;
  size_t max_connections_per_client = 0;  // per remote address; 0 = no cap
  size_t max_streams = 1024;   // responses streaming a body at once; more → 503
  size_t max_request_line = 8 * 1024;
  size_t max_head_bytes = 64 * 1024;  // request line and header fields together
  size_t max_header_fields = 100;
  std::chrono::seconds head_timeout{10};        // from a request's first byte to its last header
  std::chrono::seconds keepalive_idle{120};     // between requests on one connection
  std::chrono::seconds send_window{30};         // the window of the minimum send rate
  uint64_t min_send_bytes_per_second = 1024;    // slower over a whole window → cut
  // Largest body piece read and written at once (the store's chunk size: a
  // smaller piece would read a chunk several times); a streaming response
  // holds two (one written, one read ahead), an idle connection none.
  size_t send_piece_bytes = 1 << 20;
  bool reject_invalid_utf8_path = true;           // 400 before the handler (else the handler's call)
  std::string tls_cert, tls_key;                 // PEM files; both empty = plain HTTP
  // Headers added to every response, answers of the engine's own included.
  std::vector<std::pair<std::string, std::string>> common_headers;
  // Renders an error body for the engine's own answers (431, 400, 503).
  std::function<std::string(int status, const std::string& message)> error_body;
  // Optional. Called on the event loop for each request head before it is
  // queued for a worker: an answer it returns is sent at once (no worker, no
  // queue); nullopt sends the request on to the handler. Must never block (no
  // disk or network I/O, only short locks) and must not stream a body. An
  // exception it throws sends the request on to the handler. Called from every
  // I/O thread, at once: it must be thread-safe.
  std::function<std::optional<HttpResponse>(const HttpRequest&)> in_memory_handler;
};

// Called on a worker thread for each request head that passed the limits.
// May block. Must not throw (an exception is answered 500 and logged).
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;
// Called once per finished request (sent, cut, or the client gone) with the
// status sent, the body bytes written and the seconds from head to end; on
// the connection's I/O thread (so from several threads at once), never blocking
// for long: every connection of that loop waits while it runs.
using HttpAccessLogger = std::function<void(const HttpRequest&, const HttpResponse&, int64_t bytes,
                                            double seconds, bool completed)>;

class HttpEngine {
 public:
  HttpEngine(HttpEngineOptions options, HttpHandler handler, HttpAccessLogger logger);
  ~HttpEngine();
  HttpEngine(const HttpEngine&) = delete;
  HttpEngine& operator=(const HttpEngine&) = delete;

  // Loads TLS material (INVALID_ARGUMENT when it does not load) and binds
  // HOST:PORT (IO_ERROR when it cannot; port 0 picks one: see port()).
  Status Bind(const std::string& hostport);
  // Serves until Stop() or the end of a Drain(); returns after the I/O threads
  // and the running handlers have finished.
  void Serve();
  // Stops at once: transfers in progress are cut. Any thread.
  void Stop();
  // New requests get 503 with Connection: close; requests in progress run to
  // their end or `deadline`; then Stop(). True when nothing was still running
  // at the deadline. Any thread.
  bool Drain(std::chrono::steady_clock::time_point deadline);

  int port() const;
  int active_requests() const;   // heads read whose response has not ended
  size_t open_connections() const;

  struct Impl;  // the sessions' shared state (http_engine.cc)

 private:
  std::shared_ptr<Impl> impl_;
};

// Splits "HOST:PORT" ("[::1]:80" too). INVALID_ARGUMENT when malformed.
Status SplitHostPort(const std::string& hostport, std::string* host, int* port);

}  // namespace portcullis::proxy
