// The whole pull-through proxy behind one object: the cache (Store), the
// upstream router, the trust gate and its policy, the registry API, the admin
// API and the maintenance thread, wired as `portcullis serve` runs them. A
// caller opens it, serves, and drains or stops it; reloads swap the router and
// the policy while requests run.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "config/config.h"
#include "oci/status.h"

namespace portcullis::proxy {

class AdminServer;
class HttpServer;
class Maintenance;
class Registry;
class Store;

class Proxy {
 public:
  // Reads the settings anew for a reload (the config file and the flags).
  using ConfigLoader = std::function<StatusOr<config::Config>()>;

  // Opens everything `cfg` (already config::Finalize'd) names: the store
  // (half-written blobs of an earlier run are removed and logged), the router,
  // the policy file, the registry API's listener and, unless admin_listen is
  // "off", the admin API's listener and token. INVALID_ARGUMENT or IO_ERROR
  // naming the part that failed; nothing keeps running after a failure. When
  // admin_listen is unset and its default port is taken, the admin API is not
  // started (a warning is logged). `reload_config` may be empty: Reload() then
  // re-applies `cfg`.
  static StatusOr<std::unique_ptr<Proxy>> Open(const config::Config& cfg, ConfigLoader reload_config);
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Serves on the calling thread (the admin API and maintenance on their own
  // threads) until Stop() or the end of Drain(). Call once.
  void Serve();
  // Re-reads the settings and the policy, then swaps the router and the
  // policy; on any error the old settings stay in force and the error is
  // returned. Thread-safe (reloads are serialised).
  Status Reload();
  // New requests get 503; transfers run to their end or `deadline`; then both
  // APIs stop. True when nothing was still running at the deadline. Any thread.
  bool Drain(std::chrono::steady_clock::time_point deadline);
  // Stops both APIs at once (transfers are cut). Any thread.
  void Stop();
  // After Serve() returned: waits for upstream fetches (they run on their own
  // threads) up to `deadline`. True when none is left; the rest are cleaned
  // as half-written blobs at the next Open.
  bool WaitFetchesIdle(std::chrono::steady_clock::time_point deadline);

  int port() const;        // the registry API's port
  int admin_port() const;  // 0 when the admin API is not running
  int active_requests() const;
  Registry& registry() { return *registry_; }

 private:
  Proxy(const config::Config& cfg, ConfigLoader reload_config);

  const config::Config cfg_;
  ConfigLoader reload_config_;
  std::mutex reload_mu_;
  std::shared_ptr<Store> store_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<Maintenance> maintenance_;
  // Fetch threads nudge eviction through this; cut before maintenance_ goes
  // (a fetch may outlive the Proxy at exit).
  struct NudgeRelay;
  std::shared_ptr<NudgeRelay> nudge_;
  std::unique_ptr<AdminServer> admin_;
  std::thread admin_thread_;
};

}  // namespace portcullis::proxy
