// Entry points of the subcommands. Each takes the arguments after its own name
// and returns the process exit code: 0 success, 1 verification/policy refusal,
// 2 usage or runtime error.
#pragma once

#include <string>
#include <vector>

namespace portcullis::cli {

int RunServe(const std::vector<std::string>& args);
int RunKey(const std::vector<std::string>& args);
int RunConfig(const std::vector<std::string>& args);
// sign, verify and push live in sign_cmd.cc (issue 3).
int RunSign(const std::vector<std::string>& args);
int RunVerify(const std::vector<std::string>& args);
int RunPush(const std::vector<std::string>& args);
int RunAdmin(const std::vector<std::string>& args);
// policy check / policy test live in policy_cmd.cc.
int RunPolicy(const std::vector<std::string>& args);
// verify-bundle lives in verify_bundle_cmd.cc (issue 12).
int RunVerifyBundle(const std::vector<std::string>& args);

}  // namespace portcullis::cli
