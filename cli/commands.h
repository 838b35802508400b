// Entry points of the subcommands. Each takes the arguments after its own name
// and returns the process exit code: 0 success, 1 verification/policy refusal,
// 2 usage or runtime error.
#pragma once

#include <string>
#include <vector>

namespace portcullis::cli {

int RunServe(const std::vector<std::string>& args);
int RunKey(const std::vector<std::string>& args);

}  // namespace portcullis::cli
