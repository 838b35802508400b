// portcullis serve: load the config, open the cache, serve until SIGTERM/SIGINT.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "config/config.h"
#include "proxy/log.h"
#include "proxy/registry.h"
#include "proxy/server.h"
#include "proxy/store.h"
#include "proxy/upstreams.h"

namespace portcullis::cli {

using proxy::Log;
using proxy::LogLevel;

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
  proxy::SetLogLevel(proxy::ParseLogLevel(cfg->log_level));

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
  std::shared_ptr<proxy::Store> shared_store(std::move(*store));
  proxy::Registry registry(*cfg, shared_store, std::move(*router));
  proxy::HttpServer server(*cfg, &registry);
  if (Status st = server.Bind(); !st.ok()) {
    std::cerr << "portcullis serve: " << st.message() << "\n";
    return 2;
  }
  nlohmann::json ups = nlohmann::json::array();
  for (const auto& u : cfg->upstreams) ups.push_back({{"name", u.name}, {"url", u.url}});
  Log(LogLevel::kInfo, "serving",
      {{"listen", cfg->listen}, {"port", server.port()}, {"data_dir", cfg->data_dir}, {"upstreams", ups},
       {"default_upstream", cfg->default_upstream}, {"tag_ttl", cfg->tag_ttl_seconds},
       {"max_stale", cfg->max_stale_seconds}});

  std::thread signals([&server, sigs] {
    while (true) {
      int sig = 0;
      if (sigwait(&sigs, &sig) != 0) continue;
      if (sig == SIGHUP) {
        Log(LogLevel::kInfo, "SIGHUP: nothing to reload in this configuration");
        continue;
      }
      Log(LogLevel::kInfo, "stopping: no new connections; running transfers may finish",
          {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
      // Transfers get a deadline; past it the process ends anyway (the cache
      // stays consistent: unfinished blobs are cleaned at the next start).
      std::thread([] {
        std::this_thread::sleep_for(std::chrono::seconds(30));
        Log(LogLevel::kWarn, "drain deadline passed; exiting");
        _exit(0);
      }).detach();
      server.Stop();
      return;
    }
  });
  server.Serve();
  signals.join();
  if (!registry.fetches().WaitIdle(std::chrono::steady_clock::now() + std::chrono::seconds(25))) {
    Log(LogLevel::kWarn, "upstream fetches still running at exit; they will be cleaned at next start");
    _exit(0);
  }
  Log(LogLevel::kInfo, "stopped");
  return 0;
}

}  // namespace portcullis::cli
