#include <iostream>

#include "cli/commands.h"
#include "config/config.h"

namespace portcullis::cli {
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
  return 2;
}
}  // namespace portcullis::cli
