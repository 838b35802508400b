#include <iostream>

#include "cli/commands.h"

namespace portcullis::cli {
// Replaced by the key module (issue 3); not listed in --help until then.
int RunKey(const std::vector<std::string>&) {
  std::cerr << "portcullis: unknown command \"key\"\n";
  return 2;
}
}  // namespace portcullis::cli
