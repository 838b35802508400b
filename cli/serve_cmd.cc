// portcullis serve: load the config, open the cache, serve until SIGTERM/SIGINT.
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <mutex>
#include <thread>

#include "cli/commands.h"
#include "config/config.h"
#include "proxy/admin.h"
#include "proxy/host_check.h"
#include "proxy/log.h"
#include "proxy/maintenance.h"
#include "proxy/registry.h"
#include "proxy/server.h"
#include "proxy/store.h"
#include "proxy/upstreams.h"
#include "verifier/policy.h"

namespace portcullis::cli {

using proxy::Log;
using proxy::LogLevel;

namespace {
// A policy that can refuse nothing is almost always a mistake in a gate.
void WarnIfAcceptsEverything(const verifier::Policy& policy, const std::string& path) {
  if (!policy.AcceptsEverything()) return;
  Log(LogLevel::kWarn, "the trust policy accepts every image: the gate refuses nothing",
      {{"policy", path}, {"format", policy.format()}});
}
// Verdicts and marks of other policy versions are dead weight once a policy is in force.
void CollectGateGarbage(proxy::Gate& gate) {
  auto dropped = gate.CollectGarbage();
  if (!dropped.ok()) {
    Log(LogLevel::kWarn, "could not collect old trust-policy records", {{"error", dropped.status().ToString()}});
  } else if (*dropped > 0) {
    Log(LogLevel::kInfo, "collected old trust-policy records", {{"count", static_cast<long long>(*dropped)}});
  }
}
}  // namespace

int RunServe(const std::vector<std::string>& args) {
  bool help = false;
  auto cfg = config::FromArgs(args, &help);
  if (help) {
    std::cout << config::ServeUsage();
    return 0;
  }
  if (!cfg.ok()) {
    std::cerr << "portcullis serve: " << cfg.status().message() << "\n";
    return 2;
  }
  if (Status st = config::Finalize(&*cfg); !st.ok()) {
    std::cerr << "portcullis serve: " << st.message() << "\n";
    return 2;
  }
  if (Status st = proxy::ValidateAllowedHosts(cfg->allowed_hosts); !st.ok()) {
    std::cerr << "portcullis serve: " << st.message() << "\n";
    return 2;
  }
  proxy::SetLogLevel(proxy::ParseLogLevel(cfg->log_level));
  // Chunk buffers are 1 MiB: above glibc's default mmap threshold each read
  // would map and fault fresh pages. Keep them on the heap and reuse them.
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);

  // Block the signals in every thread; one thread waits for them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto router = proxy::Router::Create(*cfg);
  if (!router.ok()) {
    std::cerr << "portcullis serve: " << router.status().message() << "\n";
    return 2;
  }
  int cleaned = 0;
  auto store = proxy::Store::Open(cfg->data_dir, &cleaned);
  if (!store.ok()) {
    std::cerr << "portcullis serve: " << store.status().message() << "\n";
    return 2;
  }
  if (cleaned > 0) {
    Log(LogLevel::kWarn, "removed blobs left half-written by an earlier run", {{"count", cleaned}});
  }
  std::shared_ptr<const verifier::Policy> policy;
  if (!cfg->policy.empty()) {
    auto p = verifier::Policy::LoadFile(cfg->policy);
    if (!p.ok()) {
      std::cerr << "portcullis serve: policy: " << p.status().message() << "\n";
      return 2;
    }
    policy = *p;
  }
  std::shared_ptr<proxy::Store> shared_store(std::move(*store));
  proxy::Registry registry(*cfg, shared_store, std::move(*router));
  registry.gate().SetPolicy(policy);
  CollectGateGarbage(registry.gate());
  if (policy) {
    Log(LogLevel::kInfo, "trust policy loaded",
        {{"policy", cfg->policy}, {"format", policy->format()}, {"version", policy->version()},
         {"blob_gate", cfg->blob_gate}});
    WarnIfAcceptsEverything(*policy, cfg->policy);
  } else {
    Log(LogLevel::kWarn, "no trust policy (--policy): every image is served unverified");
  }

  // Reload (SIGHUP and the admin API): re-read the config file (flags still
  // win) and the policy; anything broken leaves the old settings in force.
  std::mutex reload_mu;
  auto reload = [&]() -> Status {
    std::lock_guard<std::mutex> l(reload_mu);
    bool unused = false;
    auto next = config::FromArgs(args, &unused);
    if (!next.ok()) return next.status();
    PC_RETURN_IF_ERROR(config::Finalize(&*next));
    PC_RETURN_IF_ERROR(proxy::ValidateAllowedHosts(next->allowed_hosts));
    PC_ASSIGN_OR_RETURN(auto router, proxy::Router::Create(*next));
    std::shared_ptr<const verifier::Policy> next_policy;
    if (!next->policy.empty()) {
      auto p = verifier::Policy::LoadFile(next->policy);
      if (!p.ok()) return p.status().Annotate("policy");
      next_policy = *p;
    }
    nlohmann::json ups = nlohmann::json::array();
    for (const auto& u : next->upstreams) ups.push_back({{"name", u.name}, {"url", u.url}});
    registry.SwapRouter(std::move(router));
    const bool had_policy = registry.gate().policy() != nullptr;
    registry.gate().SetPolicy(next_policy);
    if (had_policy && !next_policy) {
      Log(LogLevel::kWarn, "reload removed the trust policy: every image is now served unverified");
    }
    if (next_policy) WarnIfAcceptsEverything(*next_policy, next->policy);
    CollectGateGarbage(registry.gate());
    Log(LogLevel::kInfo, "reloaded: upstream settings and policy",
        {{"upstreams", ups}, {"default_upstream", next->default_upstream}, {"policy", next->policy},
         {"policy_version", next_policy ? next_policy->version() : ""}});
    return Status::Ok();
  };
  proxy::HttpServer server(*cfg, &registry);
  if (Status st = server.Bind(); !st.ok()) {
    std::cerr << "portcullis serve: " << st.message() << "\n";
    return 2;
  }
  proxy::Maintenance maintenance(shared_store.get(), &registry.fetches(), static_cast<uint64_t>(cfg->cache_max_bytes));
  registry.metrics().Callback("portcullis_evictions_total", "Blobs evicted to stay under --cache-max-bytes.",
                              "counter", {}, [&] { return static_cast<double>(maintenance.evictions.load()); });
  registry.metrics().Callback("portcullis_evicted_bytes_total", "Bytes of blobs evicted.", "counter", {},
                              [&] { return static_cast<double>(maintenance.evicted_bytes.load()); });

  // The admin API: its own listener and token.
  std::unique_ptr<proxy::AdminServer> admin;
  const std::string admin_listen = cfg->admin_listen.empty() ? config::kDefaultAdminListen : cfg->admin_listen;
  if (admin_listen != "off") {
    std::string token_path;
    auto token = proxy::LoadOrCreateAdminToken(cfg->admin_token_file, cfg->data_dir, &token_path);
    if (!token.ok()) {
      std::cerr << "portcullis serve: " << token.status().message() << "\n";
      return 2;
    }
    admin = std::make_unique<proxy::AdminServer>(*cfg, &registry, &maintenance, *token, reload);
    if (Status st = admin->Bind(admin_listen); !st.ok()) {
      if (!cfg->admin_listen.empty()) {
        std::cerr << "portcullis serve: admin API: " << st.message() << "\n";
        return 2;
      }
      Log(LogLevel::kWarn, "admin API not started: the default port is taken; set --admin-listen",
          {{"admin_listen", admin_listen}, {"error", st.message()}});
      admin.reset();
    } else {
      Log(LogLevel::kInfo, "admin API", {{"listen", admin_listen}, {"port", admin->port()}, {"token_file", token_path}});
    }
  }
  maintenance.Start();
  std::thread admin_thread;
  if (admin) admin_thread = std::thread([&] { admin->Serve(); });
  nlohmann::json ups = nlohmann::json::array();
  for (const auto& u : cfg->upstreams) ups.push_back({{"name", u.name}, {"url", u.url}});
  // From here on request threads hand their log lines to one writer thread.
  proxy::StartAsyncLog();
  Log(LogLevel::kInfo, "serving",
      {{"listen", cfg->listen}, {"port", server.port()}, {"tls", !cfg->tls_cert.empty()},
       {"data_dir", cfg->data_dir}, {"upstreams", ups}, {"cache_max_bytes", cfg->cache_max_bytes},
       {"default_upstream", cfg->default_upstream}, {"tag_ttl", cfg->tag_ttl_seconds},
       {"max_stale", cfg->max_stale_seconds}});

  std::thread signals([&server, &admin, &reload, sigs] {
    while (true) {
      int sig = 0;
      if (sigwait(&sigs, &sig) != 0) continue;
      if (sig == SIGHUP) {
        if (Status st = reload(); !st.ok()) {
          Log(LogLevel::kError, "SIGHUP: reload failed; the old settings stay in force", {{"error", st.message()}});
        }
        continue;
      }
      Log(LogLevel::kInfo, "stopping: no new connections; running transfers may finish",
          {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
      // Transfers get a deadline; past it the process ends anyway (the cache
      // stays consistent: unfinished blobs are cleaned at the next start).
      std::thread([] {
        std::this_thread::sleep_for(std::chrono::seconds(40));
        Log(LogLevel::kWarn, "drain deadline passed; exiting");
        proxy::FlushLog();
        _exit(0);
      }).detach();
      if (!server.Drain(std::chrono::steady_clock::now() + std::chrono::seconds(30))) {
        Log(LogLevel::kWarn, "transfers still running at the drain deadline were cut",
            {{"active", server.active_requests()}});
      }
      if (admin) admin->Stop();
      return;
    }
  });
  server.Serve();
  signals.join();
  if (admin_thread.joinable()) admin_thread.join();
  maintenance.Stop();
  if (!registry.fetches().WaitIdle(std::chrono::steady_clock::now() + std::chrono::seconds(25))) {
    Log(LogLevel::kWarn, "upstream fetches still running at exit; they will be cleaned at next start");
    proxy::FlushLog();
    _exit(0);
  }
  Log(LogLevel::kInfo, "stopped");
  proxy::StopAsyncLog();
  return 0;
}

}  // namespace portcullis::cli
