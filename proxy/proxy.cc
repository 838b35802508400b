#include "proxy/proxy.h"

#include <nlohmann/json.hpp>

#include "proxy/admin.h"
#include "proxy/host_check.h"
#include "proxy/log.h"
#include "proxy/maintenance.h"
#include "proxy/registry.h"
#include "proxy/rocksdb_crc32c.h"
#include "proxy/server.h"
#include "proxy/store.h"
#include "proxy/upstreams.h"
#include "verifier/policy.h"

namespace portcullis::proxy {

namespace {
// A policy that can refuse nothing is almost always a mistake in a gate.
void WarnIfAcceptsEverything(const verifier::Policy& policy, const std::string& path) {
  if (!policy.AcceptsEverything()) return;
  Log(LogLevel::kWarn, "the trust policy accepts every image: the gate refuses nothing",
      {{"policy", path}, {"format", policy.format()}});
}

// Verdicts and marks of other policy versions are dead weight once a policy is in force.
void CollectGateGarbage(Gate& gate) {
  auto dropped = gate.CollectGarbage();
  if (!dropped.ok()) {
    Log(LogLevel::kWarn, "could not collect old trust-policy records", {{"error", dropped.status().ToString()}});
  } else if (*dropped > 0) {
    Log(LogLevel::kInfo, "collected old trust-policy records", {{"count", static_cast<long long>(*dropped)}});
  }
}

StatusOr<std::shared_ptr<const verifier::Policy>> LoadPolicy(const config::Config& cfg) {
  if (cfg.policy.empty()) return std::shared_ptr<const verifier::Policy>();
  auto p = verifier::Policy::LoadFile(cfg.policy);
  if (!p.ok()) return p.status().Annotate("policy");
  return *p;
}

nlohmann::json UpstreamList(const config::Config& cfg) {
  nlohmann::json ups = nlohmann::json::array();
  for (const auto& u : cfg.upstreams) ups.push_back({{"name", u.name}, {"url", u.url}});
  return ups;
}
}  // namespace

struct Proxy::NudgeRelay {
  std::mutex mu;
  Maintenance* m = nullptr;
  void Nudge() {
    std::lock_guard<std::mutex> l(mu);
    if (m != nullptr) m->Nudge();
  }
  void Cut() {
    std::lock_guard<std::mutex> l(mu);
    m = nullptr;
  }
};

Proxy::Proxy(const config::Config& cfg, ConfigLoader reload_config)
    : cfg_(cfg), reload_config_(std::move(reload_config)) {}

Proxy::~Proxy() {
  if (admin_thread_.joinable()) {
    admin_->Stop();
    admin_thread_.join();
  }
  if (nudge_) nudge_->Cut();
  if (maintenance_) maintenance_->Stop();
}

StatusOr<std::unique_ptr<Proxy>> Proxy::Open(const config::Config& cfg, ConfigLoader reload_config) {
  PC_RETURN_IF_ERROR(ValidateAllowedHosts(cfg.allowed_hosts));
  PC_ASSIGN_OR_RETURN(auto router, Router::Create(cfg));
  PC_ASSIGN_OR_RETURN(auto policy, LoadPolicy(cfg));
  std::unique_ptr<Proxy> p(new Proxy(cfg, std::move(reload_config)));
  int cleaned = 0;
  StoreOptions store_options;
  store_options.direct_writes = cfg.cache_writes == "direct";
  PC_ASSIGN_OR_RETURN(auto store, Store::Open(cfg.data_dir, &cleaned, store_options));
  if (store_options.direct_writes && !store->direct_flush()) {
    Log(LogLevel::kWarn, "the data dir's file system refuses O_DIRECT writes: flushes stay buffered",
        {{"data_dir", cfg.data_dir}});
  }
  if (cleaned > 0) Log(LogLevel::kWarn, "removed blobs left half-written by an earlier run", {{"count", cleaned}});
  p->store_ = std::shared_ptr<Store>(std::move(store));
  p->registry_ = std::make_unique<Registry>(cfg, p->store_, std::move(router));
  Gate& gate = p->registry_->gate();
  gate.SetPolicy(policy);
  CollectGateGarbage(gate);
  if (policy) {
    Log(LogLevel::kInfo, "trust policy loaded",
        {{"policy", cfg.policy}, {"format", policy->format()}, {"version", policy->version()},
         {"blob_gate", cfg.blob_gate}});
    WarnIfAcceptsEverything(*policy, cfg.policy);
  } else {
    Log(LogLevel::kWarn, "no trust policy (--policy): every image is served unverified");
  }

  p->server_ = std::make_unique<HttpServer>(cfg, p->registry_.get());
  PC_RETURN_IF_ERROR(p->server_->Bind());
  p->maintenance_ = std::make_unique<Maintenance>(p->store_.get(), &p->registry_->fetches(),
                                                  static_cast<uint64_t>(cfg.cache_max_bytes));
  Maintenance* m = p->maintenance_.get();
  // A fetch reserving pending bytes wakes eviction at once (review M6): room is
  // made before the bytes reach the disk, not at the next 5 s round.
  if (cfg.cache_max_bytes > 0) {
    p->nudge_ = std::make_shared<NudgeRelay>();
    p->nudge_->m = m;
    p->registry_->fetches().set_on_reserve([relay = p->nudge_] { relay->Nudge(); });
  }
  Metrics& metrics = p->registry_->metrics();
  metrics.Callback("portcullis_evictions_total", "Blobs evicted to stay under --cache-max-bytes.", "counter", {},
                   [m] { return static_cast<double>(m->evictions.load()); });
  metrics.Callback("portcullis_evicted_bytes_total", "Bytes of blobs evicted.", "counter", {},
                   [m] { return static_cast<double>(m->evicted_bytes.load()); });

  // The admin API: its own listener and token.
  const std::string admin_listen = cfg.admin_listen.empty() ? config::kDefaultAdminListen : cfg.admin_listen;
  if (admin_listen != "off") {
    std::string token_path;
    PC_ASSIGN_OR_RETURN(std::string token, LoadOrCreateAdminToken(cfg.admin_token_file, cfg.data_dir, &token_path));
    Proxy* self = p.get();
    auto admin = std::make_unique<AdminServer>(cfg, p->registry_.get(), m, std::move(token),
                                               [self] { return self->Reload(); });
    if (Status st = admin->Bind(admin_listen); !st.ok()) {
      if (!cfg.admin_listen.empty()) return st.Annotate("admin API");
      Log(LogLevel::kWarn, "admin API not started: the default port is taken; set --admin-listen",
          {{"admin_listen", admin_listen}, {"error", st.message()}});
    } else {
      Log(LogLevel::kInfo, "admin API", {{"listen", admin_listen}, {"port", admin->port()}, {"token_file", token_path}});
      p->admin_ = std::move(admin);
    }
  }
  return p;
}

void Proxy::Serve() {
  maintenance_->Start();
  if (admin_) admin_thread_ = std::thread([this] { admin_->Serve(); });
  Log(LogLevel::kInfo, "serving",
      {{"listen", cfg_.listen}, {"port", server_->port()}, {"tls", !cfg_.tls_cert.empty()},
       {"data_dir", cfg_.data_dir}, {"upstreams", UpstreamList(cfg_)}, {"cache_max_bytes", cfg_.cache_max_bytes},
       {"default_upstream", cfg_.default_upstream}, {"tag_ttl", cfg_.tag_ttl_seconds},
       {"max_stale", cfg_.max_stale_seconds}, {"cache_crc32c", RocksCrc32cImplementation()},
       {"cache_direct_writes", store_->direct_flush()}});
  server_->Serve();
  if (admin_thread_.joinable()) {
    admin_->Stop();
    admin_thread_.join();
  }
  maintenance_->Stop();
}

Status Proxy::Reload() {
  std::lock_guard<std::mutex> l(reload_mu_);
  config::Config next = cfg_;
  if (reload_config_) {
    PC_ASSIGN_OR_RETURN(next, reload_config_());
  }
  PC_RETURN_IF_ERROR(ValidateAllowedHosts(next.allowed_hosts));
  PC_ASSIGN_OR_RETURN(auto router, Router::Create(next));
  PC_ASSIGN_OR_RETURN(auto next_policy, LoadPolicy(next));
  registry_->SwapRouter(std::move(router));
  Gate& gate = registry_->gate();
  const bool had_policy = gate.policy() != nullptr;
  gate.SetPolicy(next_policy);
  if (had_policy && !next_policy) {
    Log(LogLevel::kWarn, "reload removed the trust policy: every image is now served unverified");
  }
  if (next_policy) WarnIfAcceptsEverything(*next_policy, next.policy);
  CollectGateGarbage(gate);
  Log(LogLevel::kInfo, "reloaded: upstream settings and policy",
      {{"upstreams", UpstreamList(next)}, {"default_upstream", next.default_upstream}, {"policy", next.policy},
       {"policy_version", next_policy ? next_policy->version() : ""}});
  return Status::Ok();
}

bool Proxy::Drain(std::chrono::steady_clock::time_point deadline) {
  const bool idle = server_->Drain(deadline);
  if (admin_) admin_->Stop();
  return idle;
}

void Proxy::Stop() {
  server_->Stop();
  if (admin_) admin_->Stop();
}

bool Proxy::WaitFetchesIdle(std::chrono::steady_clock::time_point deadline) {
  return registry_->fetches().WaitIdle(deadline);
}

int Proxy::port() const { return server_->port(); }
int Proxy::admin_port() const { return admin_ ? admin_->port() : 0; }
int Proxy::active_requests() const { return server_->active_requests(); }

}  // namespace portcullis::proxy
