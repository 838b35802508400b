// Tests for the admin token file of proxy/admin.h (review L7): a token file
// other users may read is named (and LoadOrCreateAdminToken logs it), the
// generated one is 0600.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "proxy/admin.h"
#include "tests/test_util.h"

namespace {

using portcullis::proxy::LoadOrCreateAdminToken;
using portcullis::proxy::TokenFilePermissionProblem;
using portcullis::testing::TempDir;

}  // namespace

TEST_CASE("proxy: an admin token file readable by others is named, a private one is not") {
  TempDir dir;
  const std::string path = dir.Write("token", "0123456789abcdef0123456789abcdef\n");
  for (auto mode : {0644, 0640, 0604, 0660, 0606}) {
    CAPTURE(mode);
    std::filesystem::permissions(path, std::filesystem::perms(mode));
    auto problem = TokenFilePermissionProblem(path);
    REQUIRE(problem.has_value());
    CHECK(problem->find("chmod 600") != std::string::npos);
  }
  for (auto mode : {0600, 0400}) {
    CAPTURE(mode);
    std::filesystem::permissions(path, std::filesystem::perms(mode));
    CHECK_FALSE(TokenFilePermissionProblem(path).has_value());
  }
  CHECK_FALSE(TokenFilePermissionProblem((dir.path / "absent").string()).has_value());
  // A readable-by-others file still works (a warning, not a refusal).
  std::filesystem::permissions(path, std::filesystem::perms(0644));
  std::string used;
  auto token = LoadOrCreateAdminToken(path, dir.str(), &used);
  REQUIRE(token.ok());
  CHECK(*token == "0123456789abcdef0123456789abcdef");
}

TEST_CASE("proxy: the generated admin token file is private") {
  TempDir dir;
  std::string used;
  auto token = LoadOrCreateAdminToken("", dir.str(), &used);
  REQUIRE(token.ok());
  CHECK(token->size() == 64);
  CHECK_FALSE(TokenFilePermissionProblem(used).has_value());
}
