#include "cli/verify_mode.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace portcullis::cli {
namespace {

StatusOr<VerifyMode> Mode(const std::vector<std::string>& args) {
  auto flags = ParseFlags(args, VerifyFlagSpec());
  if (!flags.ok()) return flags.status();
  return VerifyModeFromFlags(*flags);
}

// The usage error for `args`, "" when they parse.
std::string Error(const std::vector<std::string>& args) {
  auto m = Mode(args);
  if (m.ok()) return "";
  CHECK(m.status().Is(Code::kInvalidArgument));
  return m.status().message();
}

const std::string kId = "--certificate-identity", kIdRe = "--certificate-identity-regexp";
const std::string kIss = "--certificate-oidc-issuer", kIssRe = "--certificate-oidc-issuer-regexp";

TEST_CASE("verify flags: --key, --policy and keyless identities pick the mode") {
  auto key = Mode({"img", "--key", "k.pub", "--trusted-root", "tr.json"});
  REQUIRE(key.ok());
  CHECK(key->kind == VerifyMode::Kind::kKey);
  auto pol = Mode({"img", "--policy", "p.json"});
  REQUIRE(pol.ok());
  CHECK(pol->kind == VerifyMode::Kind::kPolicy);
  auto exact = Mode({"img", kId, "a@example.com", kIss, "https://issuer.example", "--trusted-root", "tr.json"});
  REQUIRE(exact.ok());
  CHECK(exact->kind == VerifyMode::Kind::kKeyless);
  CHECK(exact->identity.subject == "a@example.com");
  CHECK(exact->identity.issuer == "https://issuer.example");
  CHECK(exact->identity.subject_regexp.empty());
  auto re = Mode({"img", kIdRe + "=.*@example\\.com", kIssRe, "https://.*"});
  REQUIRE(re.ok());
  CHECK(re->identity.subject_regexp == ".*@example\\.com");
  CHECK(re->identity.issuer_regexp == "https://.*");
  CHECK(re->identity.subject.empty());
  CHECK(re->identity.issuer.empty());
}

TEST_CASE("verify flags attack: usage errors are refused, naming the flags") {
  auto has = [](const std::string& err, const std::string& want) {
    CHECK_MESSAGE(err.find(want) != std::string::npos, err);
  };
  has(Error({"img"}), "missing --key PUB, --policy FILE, or --certificate-identity");
  has(Error({"img", "--key", "k", kId, "a", kIss, "i"}), "exclude each other");
  has(Error({"img", "--policy", "p", kId, "a", kIss, "i"}), "exclude each other");
  has(Error({"img", "--policy", "p", "--key", "k"}), "exclude each other");
  has(Error({"img", "--policy", "p", "--trusted-root", "t"}), "--trusted-root goes with");
  // An identity needs both a subject and an issuer, each exactly once.
  has(Error({"img", kId, "a"}), "exactly one of --certificate-oidc-issuer and --certificate-oidc-issuer-regexp");
  has(Error({"img", kIss, "i"}), "exactly one of --certificate-identity and --certificate-identity-regexp");
  has(Error({"img", kIssRe, "i"}), "exactly one of --certificate-identity and");
  has(Error({"img", kId, "a", kIdRe, "a.*", kIss, "i"}), "exactly one of --certificate-identity and");
  has(Error({"img", kId, "a", kIss, "i", kIssRe, "i.*"}), "exactly one of --certificate-oidc-issuer and");
  // Regular expressions must compile; values must not be empty or given twice.
  has(Error({"img", kIdRe, "(unclosed", kIss, "i"}), "--certificate-identity-regexp: not a valid regular expression");
  has(Error({"img", kId, "a", kIssRe, "[z-a]"}), "--certificate-oidc-issuer-regexp: not a valid regular expression");
  has(Error({"img", kId + "=", kIss, "i"}), "empty value");
  has(Error({"img", kId, "a", kId, "b", kIss, "i"}), "given twice");
  has(Error({"img", "--certificate-identity-regex", "a", kIss, "i"}), "--certificate-identity-regex");
}

}  // namespace
}  // namespace portcullis::cli
