// portcullis serve: load the config, open the cache, serve until SIGTERM/SIGINT.
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <mutex>
#include <thread>

#include "cli/commands.h"
#include "config/config.h"
#include "proxy/log.h"
#include "proxy/proxy.h"

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
  // Chunk buffers are 1 MiB: above glibc's default mmap threshold each read
  // would map and fault fresh pages. Keep them on the heap and reuse them.
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  // glibc gives each thread that allocates its own arena, up to 8 per core, and
  // an arena keeps what was freed in it: 16 clients of a cached 200 MiB blob,
  // served by 16 workers, left 199-207 MiB resident for good. As many arenas as
  // cores: 80-88 MiB, and the 16 pulls no slower (2.1-2.3 s against 2.6-2.8 s;
  // bench/README.md, "Peak RSS").
  mallopt(M_ARENA_MAX, static_cast<int>(std::max(2u, std::thread::hardware_concurrency())));

  // Block the signals in every thread; one thread waits for them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // A reload (SIGHUP, the admin API) re-reads the config file; flags still win.
  auto reload_config = [args]() -> StatusOr<config::Config> {
    bool unused = false;
    PC_ASSIGN_OR_RETURN(config::Config next, config::FromArgs(args, &unused));
    PC_RETURN_IF_ERROR(config::Finalize(&next));
    return next;
  };
  auto opened = proxy::Proxy::Open(*cfg, reload_config);
  if (!opened.ok()) {
    std::cerr << "portcullis serve: " << opened.status().message() << "\n";
    return 2;
  }
  proxy::Proxy& p = **opened;
  // From here on request threads hand their log lines to one writer thread.
  proxy::StartAsyncLog();

  std::thread signals([&p, sigs] {
    while (true) {
      int sig = 0;
      if (sigwait(&sigs, &sig) != 0) continue;
      if (sig == SIGHUP) {
        if (Status st = p.Reload(); !st.ok()) {
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
      if (!p.Drain(std::chrono::steady_clock::now() + std::chrono::seconds(30))) {
        Log(LogLevel::kWarn, "transfers still running at the drain deadline were cut",
            {{"active", p.active_requests()}});
      }
      return;
    }
  });
  p.Serve();
  signals.join();
  if (!p.WaitFetchesIdle(std::chrono::steady_clock::now() + std::chrono::seconds(25))) {
    Log(LogLevel::kWarn, "upstream fetches still running at exit; they will be cleaned at next start");
    proxy::FlushLog();
    _exit(0);
  }
  opened->reset();
  Log(LogLevel::kInfo, "stopped");
  proxy::StopAsyncLog();
  return 0;
}

}  // namespace portcullis::cli
