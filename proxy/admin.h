// The admin API: a separate listener with its own bearer token. /healthz and
// /readyz answer anyone; everything else answers 401 without the token.
//   GET  /metrics                     Prometheus text
//   GET  /api/v1/cache/stats          counts and bounds
//   GET  /api/v1/cache/ls[?repo=R]    blobs and manifests with size, last access, repos, tags
//   POST /api/v1/cache/purge?target=  UPSTREAM/REPO or a digest
//   POST /api/v1/cache/gc             drop what no repository links
//   POST /api/v1/cache/fsck           re-hash everything stored, drop what is damaged
//   POST /api/v1/prefetch?image=REF   pull an image into the cache (JSON lines, streamed)
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "config/config.h"
#include "oci/status.h"
#include "proxy/http_engine.h"
#include "proxy/maintenance.h"
#include "proxy/registry.h"

namespace portcullis::proxy {

// Reads the token from `path`, or when `path` is empty from
// <data_dir>/admin.token, creating that file (mode 0600, 32 random bytes as
// hex) when absent. Returns the token; never logs it.
StatusOr<std::string> LoadOrCreateAdminToken(const std::string& path, const std::string& data_dir,
                                             std::string* used_path);

// A sentence naming the problem when other users have access to the token
// file at `path` (any group or other permission bit set), else nullopt (also
// when it cannot be stat()ed: reading it will say so). LoadOrCreateAdminToken
// logs it as a warning.
std::optional<std::string> TokenFilePermissionProblem(const std::string& path);

class AdminServer {
 public:
  // `reload` re-reads the config and the policy (SIGHUP does the same).
  AdminServer(const config::Config& cfg, Registry* registry, Maintenance* maintenance, std::string token,
              std::function<Status()> reload);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  Status Bind(const std::string& hostport);
  void Serve();
  void Stop();
  int port() const { return engine_->port(); }

  // Answers one admin request (on a worker thread; may block).
  HttpResponse Handle(const HttpRequest& req);

 private:
  using Endpoint = std::function<void(const HttpRequest&, HttpResponse&)>;
  void Install();

  const config::Config cfg_;
  Registry* registry_;
  Maintenance* maintenance_;
  const std::string token_;
  std::function<Status()> reload_;
  std::map<std::string, Endpoint> get_;
  std::map<std::string, Endpoint> post_;
  std::atomic<int> producers_{0};  // prefetch threads still running
  std::unique_ptr<HttpEngine> engine_;
};

}  // namespace portcullis::proxy
