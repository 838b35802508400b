#include <iostream>

#include "cli/commands.h"

namespace portcullis::cli {
// Replaced by the signer (issue 3); not listed in --help until it lands.
static int Unknown(const char* name) {
  std::cerr << "portcullis: unknown command \"" << name << "\"\n";
  return 2;
}
int RunSign(const std::vector<std::string>&) { return Unknown("sign"); }
int RunVerify(const std::vector<std::string>&) { return Unknown("verify"); }
int RunPush(const std::vector<std::string>&) { return Unknown("push"); }
}  // namespace portcullis::cli
