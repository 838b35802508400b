// portcullis config check FILE: validate a config file and name the bad field.
#include <iostream>

#include "cli/commands.h"
#include "config/config.h"
#include "proxy/host_check.h"

namespace portcullis::cli {

int RunConfig(const std::vector<std::string>& args) {
  constexpr const char* kUsage =
      "Usage: portcullis config check FILE\n\n"
      "Validates a proxy config file (the JSON that `serve --config` reads): unknown\n"
      "fields, wrong types, bad URLs, duplicate upstreams. Prints the effective settings.\n"
      "Exit 0 valid, 2 invalid.\n";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  if (args[0] != "check" || args.size() != 2) {
    std::cerr << "portcullis config: expected `check FILE`\n\n" << kUsage;
    return 2;
  }
  auto cfg = config::LoadFile(args[1]);
  if (!cfg.ok()) {
    std::cerr << "portcullis config check: " << cfg.status().message() << "\n";
    return 2;
  }
  if (Status st = config::Finalize(&*cfg); !st.ok()) {
    std::cerr << "portcullis config check: " << args[1] << ": " << st.message() << "\n";
    return 2;
  }
  if (Status st = proxy::ValidateAllowedHosts(cfg->allowed_hosts); !st.ok()) {
    std::cerr << "portcullis config check: " << args[1] << ": " << st.message() << "\n";
    return 2;
  }
  std::cout << args[1] << ": valid\n"
            << "  listen " << cfg->listen << "\n  data_dir " << cfg->data_dir << "\n";
  for (const auto& u : cfg->upstreams) {
    std::cout << "  upstream " << u.name << " = " << u.url << (u.name == cfg->default_upstream ? " (default)" : "")
              << (u.username.empty() ? "" : " (credentials: " + u.username + ")") << "\n";
  }
  if (!cfg->allowed_hosts.empty()) {
    std::cout << "  allowed_hosts";
    for (const auto& h : cfg->allowed_hosts) std::cout << " " << h;
    std::cout << "\n";
  }
  std::cout << "  tag_ttl " << cfg->tag_ttl_seconds << "s, max_stale " << cfg->max_stale_seconds << "s\n";
  return 0;
}

}  // namespace portcullis::cli
