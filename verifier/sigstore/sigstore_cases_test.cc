// Every Sigstore conformance case copied into tests/vectors/sigstore/cases runs
// twice through the library (artifact bytes, then only its sha256 digest): a case
// whose name ends in "_fail" must be refused, every other one must verify.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "keys/key.h"
#include "verifier/sigstore/crypto.h"
#include "verifier/sigstore/verify.h"

namespace portcullis::verifier::sigstore {
namespace {

namespace fs = std::filesystem;

const fs::path kCases = fs::path(PORTCULLIS_SOURCE_DIR) / "tests" / "vectors" / "sigstore" / "cases";
constexpr const char* kDefaultIdentity =
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/"
    "extremely-dangerous-oidc-beacon.yml@refs/heads/main";
constexpr const char* kDefaultIssuer = "https://token.actions.githubusercontent.com";

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// The verdict of one case for one form of the artifact; the reason when refused.
Status RunCase(const fs::path& dir, bool by_digest) {
  fs::path art = fs::exists(dir / "artifact") ? dir / "artifact" : kCases / "a.txt";
  std::string data = Slurp(art);
  Artifact artifact = Artifact::FromBytes(data);
  if (by_digest) {
    auto a = Artifact::FromDigest("sha256:" + Hex(Sha256(data)));
    if (!a.ok()) return a.status();
    artifact = *a;
    CHECK_FALSE(artifact.bytes.has_value());
  }
  auto root = fs::exists(dir / "trusted_root.json") ? TrustedRoot::Parse(Slurp(dir / "trusted_root.json"))
                                                    : TrustedRoot::PublicGood();
  if (!root.ok()) return root.status();
  VerifyOptions opt;
  if (fs::exists(dir / "key.pub")) {
    auto key = keys::PublicKey::FromPemFile((dir / "key.pub").string());
    if (!key.ok()) return key.status();
    auto der = key->Der();
    if (!der.ok()) return der.status();
    opt.key_der = *der;
  } else {
    opt.identity.identity = fs::exists(dir / "identity") ? Trim(Slurp(dir / "identity")) : kDefaultIdentity;
    opt.identity.issuer = fs::exists(dir / "issuer") ? Trim(Slurp(dir / "issuer")) : kDefaultIssuer;
  }
  auto bundle = ParseBundle(Slurp(dir / "bundle.sigstore.json"));
  if (!bundle.ok()) return bundle.status();
  auto result = VerifyBundle(*bundle, *root, artifact, opt);
  return result.status();
}

TEST_CASE("sigstore conformance cases: each verifies or is refused as named, by file and by digest") {
  REQUIRE(fs::is_directory(kCases));
  int cases = 0, must_fail = 0;
  for (const auto& e : fs::directory_iterator(kCases)) {
    if (!e.is_directory() || !fs::exists(e.path() / "bundle.sigstore.json")) continue;
    const std::string name = e.path().filename().string();
    const bool want_ok = !name.ends_with("_fail");
    ++cases;
    must_fail += want_ok ? 0 : 1;
    for (bool by_digest : {false, true}) {
      Status st = RunCase(e.path(), by_digest);
      INFO(name << (by_digest ? " (digest)" : " (file)") << ": " << st.ToString());
      CHECK(st.ok() == want_ok);
      // A refusal is a verdict, never an internal error.
      CHECK_FALSE(st.Is(Code::kInternal));
    }
  }
  CHECK(cases == 33);
  CHECK(must_fail == 23);
}

}  // namespace
}  // namespace portcullis::verifier::sigstore

namespace portcullis::verifier::sigstore {
namespace {

// Untrusted bytes never escape as an exception or a crash: every case's bundle with
// bytes flipped or cut off is parsed and verified, and only a Status comes back.
TEST_CASE("sigstore: mangled bundles give a verdict, never an exception or an accepted mutant") {
  uint32_t seed = 12345;
  auto next = [&] { return seed = seed * 1103515245u + 12345u; };
  auto root = TrustedRoot::PublicGood();
  REQUIRE(root.ok());
  Artifact a = Artifact::FromBytes(Slurp(kCases / "a.txt"));
  int runs = 0, accepted = 0;
  for (const char* name : {"happy-path-v0.3", "happy-path-v0.1", "happy-path-intoto-in-dsse-v3"}) {
    const std::string original = Slurp(kCases / name / "bundle.sigstore.json");
    for (int i = 0; i < 60; ++i) {
      std::string text = original;
      if (i % 3 == 0) {
        text.resize(next() % text.size());
      } else {
        size_t pos = next() % text.size();
        text[pos] = static_cast<char>(text[pos] ^ (1 + next() % 255));
      }
      ++runs;
      auto bundle = ParseBundle(text);
      if (!bundle.ok()) continue;
      VerifyOptions opt;
      opt.identity.identity = kDefaultIdentity;
      opt.identity.issuer = kDefaultIssuer;
      auto r = VerifyBundle(*bundle, *root, a, opt);
      if (r.ok()) ++accepted;
      CHECK_FALSE(r.status().Is(Code::kInternal));
    }
  }
  CHECK(runs == 180);
  // The seed is fixed: none of these 180 mutants touches only unsigned, unchecked bytes.
  CHECK(accepted == 0);
}

}  // namespace
}  // namespace portcullis::verifier::sigstore
