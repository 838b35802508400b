// The HTTP face of the proxy: the OCI pull API on cpp-httplib. Handlers are
// thin: parse, call Registry, map the Status through the one error table.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "config/config.h"
#include "oci/status.h"
#include "proxy/registry.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}

namespace portcullis::proxy {

class HttpServer {
 public:
  HttpServer(const config::Config& cfg, Registry* registry);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listen address (IO_ERROR when it cannot).
  Status Bind();
  // Serves until Stop(); returns after running requests have finished.
  void Serve();
  // Stops at once (transfers in progress are cut); safe from another thread.
  void Stop();
  // Drains: new requests get 503 (Connection: close), transfers in progress
  // run to their end or `deadline`, then the server stops. True when nothing
  // was still running at the deadline. Safe from another thread.
  bool Drain(std::chrono::steady_clock::time_point deadline);
  int active_requests() const { return active_.load(); }
  int port() const { return port_; }

 private:
  void Install();
  // GET and HEAD of the registry API; called from the pre-routing handler so no
  // request pays for httplib's regex routing.
  void HandleGet(const httplib::Request& req, httplib::Response& res);
  void ServeBlob(const BlobSource& src, httplib::Response& res);
  // A blob only a signature artifact names: served whole, only when it is
  // small JSON (verifier::IsArtifactBlob); DENIED otherwise.
  void ServeArtifactBlob(const Route& route, const oci::Digest& d, bool head, httplib::Response& res);
  // The whole blob, verified against its digest, when at most `max` bytes
  // (DENIED when larger).
  StatusOr<std::string> ReadSmallBlob(const BlobSource& src, size_t max);

  const config::Config cfg_;
  Registry* registry_;
  std::unique_ptr<httplib::Server> svr_;
  int port_ = 0;
  std::atomic<bool> draining_{false};
  std::atomic<int> active_{0};
  int listen_fd_ = -1;  // the listening socket, captured when httplib creates it
};

}  // namespace portcullis::proxy
