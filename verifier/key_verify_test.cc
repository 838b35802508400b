// `portcullis verify --key` over what discovery finds (verifier/key_verify.h),
// written as attacks: a bundle by another key, a bundle of another image
// relabelled onto this one, a keyless bundle offered to a key, a log the trusted
// root does not know. Key-based bundles are made by
// verifier/sigstore/synthetic_bundle_test_util.h (a test log and its root).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "verifier/key_verify.h"
#include "verifier/policy_test_util.h"
#include "verifier/sigstore/synthetic_bundle_test_util.h"

namespace portcullis::verifier {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::TestKey;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

FoundSignature AsBundle(const std::string& bundle_json) { return testing::BundleFound(bundle_json, "fallback tag sha256-test -> sha256:test"); }

sigstore::TrustedRoot Root(const std::string& text) {
  auto r = sigstore::TrustedRoot::Parse(text);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  return std::move(*r);
}

keys::PublicKey Pub(const std::string& pem) {
  auto k = keys::PublicKey::FromPem(pem);
  REQUIRE_MESSAGE(k.ok(), k.status().ToString());
  return std::move(*k);
}

// The bundle without its log entry: what `portcullis sign --bundle` and
// `cosign sign --key --tlog-upload=false` write.
std::string Untimed(const std::string& bundle) {
  json j = json::parse(bundle);
  j["verificationMaterial"].erase("tlogEntries");
  return j.dump();
}

std::string Reasons(const KeyVerification& r) {
  std::string s;
  for (const auto& x : r.rejected) s += x.reason + "\n";
  return s;
}

TEST_CASE("verify --key: a key-based bundle verifies; a foreign key, another image, an unknown log do not") {
  sigstore::testing::Options o;
  sigstore::testing::Made m = sigstore::testing::Make(o);
  const oci::Digest image = oci::Digest::Sha256Of(sigstore::testing::kArtifact);
  const sigstore::TrustedRoot root = Root(m.root);
  const keys::PublicKey key = Pub(m.key_pem);

  KeyVerification ok = VerifyWithKey({AsBundle(m.bundle)}, key, root, image);
  INFO(Reasons(ok));
  REQUIRE(ok.ok());
  CHECK(ok.verified[0].bundle);
  CHECK(ok.verified[0].source.find("fallback tag") != std::string::npos);
  CHECK(ok.rejected.empty());

  // Attack: the bundle checked with another key.
  TestKey other = TestKey::Make();
  KeyVerification foreign = VerifyWithKey({AsBundle(m.bundle)}, Pub(other.pub_pem), root, image);
  CHECK_FALSE(foreign.ok());
  REQUIRE(foreign.rejected.size() == 1);
  CHECK(foreign.rejected[0].bundle);
  // (the log entry is checked first: it logs the signer's key, not this one)
  CHECK(foreign.rejected[0].reason.find("the logged certificate/key is not the bundle's") != std::string::npos);

  // Attack: the bundle relabelled onto another image (found as its referrer).
  KeyVerification relabel = VerifyWithKey({AsBundle(m.bundle)}, key, root, oci::Digest::Sha256Of("another image"));
  CHECK_FALSE(relabel.ok());
  REQUIRE(relabel.rejected.size() == 1);
  CHECK(relabel.rejected[0].reason.find("the logged artifact hash is not the artifact's") != std::string::npos);

  // Attack: a log entry from a log the trusted root does not hold.
  auto public_good = sigstore::TrustedRoot::PublicGood();
  REQUIRE(public_good.ok());
  KeyVerification unknown_log = VerifyWithKey({AsBundle(m.bundle)}, key, *public_good, image);
  CHECK_FALSE(unknown_log.ok());
  CHECK(Reasons(unknown_log).find("not in the trusted root") != std::string::npos);
}

TEST_CASE("verify --key: a bundle without log entry (sign --bundle) verifies on its signature alone") {
  sigstore::testing::Options o;
  sigstore::testing::Made m = sigstore::testing::Make(o);
  const oci::Digest image = oci::Digest::Sha256Of(sigstore::testing::kArtifact);
  auto root = sigstore::TrustedRoot::PublicGood();
  REQUIRE(root.ok());
  const std::string bundle = Untimed(m.bundle);
  KeyVerification ok = VerifyWithKey({AsBundle(bundle)}, Pub(m.key_pem), *root, image);
  INFO(Reasons(ok));
  CHECK(ok.ok());
  // Attack: another key, another image.
  CHECK_FALSE(VerifyWithKey({AsBundle(bundle)}, Pub(TestKey::Make().pub_pem), *root, image).ok());
  CHECK_FALSE(VerifyWithKey({AsBundle(bundle)}, Pub(m.key_pem), *root, oci::Digest::Sha256Of("x")).ok());
  // Attack: a tampered signature.
  sigstore::testing::Options bad = o;
  bad.corrupt_signature = true;
  sigstore::testing::Made b = sigstore::testing::Make(bad);
  CHECK_FALSE(VerifyWithKey({AsBundle(Untimed(b.bundle))}, Pub(b.key_pem), *root, image).ok());
}

TEST_CASE("verify --key: simple-signing layers and bundles side by side; a keyless bundle is not the key's") {
  sigstore::testing::Options o;
  sigstore::testing::Made m = sigstore::testing::Make(o);
  const oci::Digest image = oci::Digest::Sha256Of(sigstore::testing::kArtifact);
  const sigstore::TrustedRoot root = Root(m.root);
  TestKey k = TestKey::Make();

  // The .sig layer by k verifies; k's key does not verify the bundle by m's key.
  FoundSignature sig = k.SignImage("registry.test/app", image);
  KeyVerification r = VerifyWithKey({AsBundle(m.bundle), sig}, Pub(k.pub_pem), root, image);
  REQUIRE(r.verified.size() == 1);
  CHECK_FALSE(r.verified[0].bundle);
  CHECK(r.verified[0].parsed.docker_reference == "registry.test/app");
  REQUIRE(r.rejected.size() == 1);
  CHECK(r.rejected[0].bundle);

  // Attack: k's .sig layer of another image.
  FoundSignature moved = k.SignImage("registry.test/app", oci::Digest::Sha256Of("other"));
  CHECK_FALSE(VerifyWithKey({moved}, Pub(k.pub_pem), root, image).ok());

  // Attack: a keyless bundle (a real one: a certificate, not a key hint) is never
  // accepted for a key.
  const fs::path cases = fs::path(PORTCULLIS_SOURCE_DIR) / "tests" / "vectors" / "sigstore" / "cases";
  FoundSignature keyless = AsBundle(Slurp(cases / "happy-path-v0.3" / "bundle.sigstore.json"));
  KeyVerification kl = VerifyWithKey({keyless}, Pub(k.pub_pem), root, image);
  CHECK_FALSE(kl.ok());
  REQUIRE(kl.rejected.size() == 1);
  CHECK(kl.rejected[0].reason.find("signed with a certificate, not a key") != std::string::npos);
}

}  // namespace
}  // namespace portcullis::verifier
