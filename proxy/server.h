// The HTTP face of the proxy: the OCI pull API on the event-driven engine
// (proxy/http_engine.h). Handlers are thin: parse, call Registry, map the
// Status through the one error table (oci/errors.h).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "config/config.h"
#include "oci/status.h"
#include "proxy/http_engine.h"
#include "proxy/registry.h"

namespace portcullis::proxy {

// The OCI error answer for `st` through the one table (oci/errors.h): status,
// JSON body, the access-log fields, and Retry-After for TOOMANYREQUESTS.
void SetOciError(HttpResponse& res, const Status& st);
// The engine's own answers (400, 431, 503) as OCI error JSON: 503 for a full
// queue or cap is TOOMANYREQUESTS, else UPSTREAM_UNAVAILABLE; others INVALID_ARGUMENT.
std::string EngineErrorBody(int status, const std::string& message);

// The engine's settings for the registry API, from the config.
HttpEngineOptions RegistryEngineOptions(const config::Config& cfg);

// Answers one request of the registry API (GET and HEAD under /v2/; every
// other method is refused as UNSUPPORTED). Blocks on the store and the
// upstream. Never throws on request bytes. Thread-safe: `registry` is.
HttpResponse HandleRegistryRequest(Registry& registry, const config::Config& cfg, const HttpRequest& req);

// The same answer as HandleRegistryRequest when it needs no disk read, no
// upstream and no policy evaluation: cached manifests (a digest the repository
// holds, a tag within its TTL) whose records are in RocksDB's memory and whose
// accepting verdict is in the gate's memory, /v2/, and requests refused by
// their shape. nullopt otherwise: the caller runs HandleRegistryRequest on a
// worker. Never blocks on I/O, so the engine runs it on its event loop.
std::optional<HttpResponse> TryRegistryRequestInMemory(Registry& registry, const config::Config& cfg,
                                                      const HttpRequest& req);

class HttpServer {
 public:
  // `registry` must outlive the server.
  HttpServer(const config::Config& cfg, Registry* registry);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Loads TLS material and binds the listen address (INVALID_ARGUMENT for bad
  // TLS files, IO_ERROR when it cannot listen).
  Status Bind();
  // Serves until Stop() or the end of Drain(); returns after running requests
  // have finished or been cut.
  void Serve();
  // Stops at once (transfers in progress are cut); safe from another thread.
  void Stop();
  // Drains: new requests get 503 (Connection: close), transfers in progress
  // run to their end or `deadline`, then the server stops. True when nothing
  // was still running at the deadline. Safe from another thread.
  bool Drain(std::chrono::steady_clock::time_point deadline);
  int active_requests() const { return engine_->active_requests(); }
  size_t open_connections() const { return engine_->open_connections(); }
  int port() const { return engine_->port(); }

 private:
  const config::Config cfg_;
  Registry* registry_;
  std::unique_ptr<HttpEngine> engine_;
};

}  // namespace portcullis::proxy
