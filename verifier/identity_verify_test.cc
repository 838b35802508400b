// `portcullis verify IMAGE --certificate-identity ...` over what discovery finds
// (verifier/key_verify.h VerifyWithIdentity), written as attacks: a real keyless
// bundle of the Sigstore conformance suite (public-good root) and legacy keyless
// .sig layers made here (verifier/legacy_keyless_test_util.h) verify for their
// identity only; another subject or issuer, another image, key-based signatures
// (bundle or .sig) are rejected, each for its reason.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "verifier/key_verify.h"
#include "verifier/legacy_keyless_test_util.h"
#include "verifier/policy_test_util.h"
#include "verifier/sigstore/synthetic_bundle_test_util.h"

namespace portcullis::verifier {
namespace {

namespace fs = std::filesystem;
namespace lk = testing::legacy;

const std::string kBeacon =
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/"
    "extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const std::string kActions = "https://token.actions.githubusercontent.com";

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

FoundSignature AsBundle(const std::string& bundle_json) { return testing::BundleFound(bundle_json); }

sigstore::TrustedRoot Root(const std::string& text) {
  auto r = sigstore::TrustedRoot::Parse(text);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  return std::move(*r);
}

KeylessIdentity Id(const std::string& subject, const std::string& issuer) {
  KeylessIdentity id;
  id.subject = subject;
  id.issuer = issuer;
  return id;
}

void RejectedFor(const KeyVerification& r, const std::string& why) {
  CHECK_FALSE(r.ok());
  REQUIRE(r.rejected.size() == 1);
  CHECK_MESSAGE(r.rejected[0].reason.find(why) != std::string::npos, r.rejected[0].reason);
}

TEST_CASE("verify keyless: a conformance-suite keyless bundle verifies for its identity and digest only") {
  const fs::path cases = fs::path(PORTCULLIS_SOURCE_DIR) / "tests" / "vectors" / "sigstore" / "cases";
  FoundSignature b = AsBundle(Slurp(cases / "happy-path-v0.3" / "bundle.sigstore.json"));
  const oci::Digest digest = oci::Digest::Sha256Of(Slurp(cases / "a.txt"));
  auto pg = sigstore::TrustedRoot::PublicGood();
  REQUIRE(pg.ok());
  KeyVerification r = VerifyWithIdentity({b}, Id(kBeacon, kActions), *pg, digest);
  REQUIRE_MESSAGE(r.ok(), (r.rejected.empty() ? "" : r.rejected[0].reason));
  CHECK(r.verified[0].bundle);
  CHECK(r.verified[0].keyless);
  CHECK(r.verified[0].identity.issuer == kActions);
  // A regular expression over the SAN.
  KeylessIdentity re;
  re.subject_regexp = "https://github\\.com/sigstore-conformance/.*";
  re.issuer = kActions;
  CHECK(VerifyWithIdentity({b}, re, *pg, digest).ok());

  RejectedFor(VerifyWithIdentity({b}, Id("https://github.com/mallory/x", kActions), *pg, digest), "does not match");
  RejectedFor(VerifyWithIdentity({b}, Id(kBeacon, "https://accounts.google.com"), *pg, digest),
              "certificate OIDC issuer");
  RejectedFor(VerifyWithIdentity({b}, Id(kBeacon, kActions), *pg, oci::Digest::Sha256Of("another image")),
              "not the artifact's");
  // Under a trusted root that does not know its Fulcio and Rekor.
  sigstore::testing::Made other = sigstore::testing::Make({});
  CHECK_FALSE(VerifyWithIdentity({b}, Id(kBeacon, kActions), Root(other.root), digest).ok());
}

TEST_CASE("verify keyless attack: legacy keyless .sig for another identity or image; key-based signatures") {
  const oci::Digest image = oci::Digest::Sha256Of("the image manifest");
  lk::Fulcio fulcio;
  lk::Key rekor = lk::NewKey();
  lk::CtLog ct;
  const sigstore::TrustedRoot root = Root(lk::TrustedRootJson(fulcio, rekor.get(), ct));
  lk::LayerOptions o;
  o.digest = image;
  FoundSignature good = lk::MakeLayer(o, fulcio, rekor.get(), ct).sig;

  KeyVerification r = VerifyWithIdentity({good}, Id(lk::kEmail, lk::kIssuer), root, image);
  REQUIRE_MESSAGE(r.ok(), (r.rejected.empty() ? "" : r.rejected[0].reason));
  CHECK_FALSE(r.verified[0].bundle);
  CHECK(r.verified[0].keyless);
  CHECK(r.verified[0].parsed.docker_reference == lk::kRef);
  CHECK(r.verified[0].payload == good.payload);

  RejectedFor(VerifyWithIdentity({good}, Id("mallory@example.com", lk::kIssuer), root, image),
              "does not match \"mallory@example.com\"");
  RejectedFor(VerifyWithIdentity({good}, Id(lk::kEmail, "https://other.example"), root, image),
              "does not match \"https://other.example\"");
  lk::LayerOptions moved = o;
  moved.digest = oci::Digest::Sha256Of("another image");
  RejectedFor(VerifyWithIdentity({lk::MakeLayer(moved, fulcio, rekor.get(), ct).sig}, Id(lk::kEmail, lk::kIssuer),
                                 root, image),
              image.ToString());
  lk::Fulcio foreign;
  RejectedFor(VerifyWithIdentity({lk::MakeLayer(o, foreign, rekor.get(), ct).sig}, Id(lk::kEmail, lk::kIssuer),
                                 root, image),
              "does not chain to a trusted Fulcio CA");

  // Key-based signatures do not count for an identity: a .sig without certificate, a key-hint bundle.
  testing::TestKey k = testing::TestKey::Make();
  RejectedFor(VerifyWithIdentity({k.SignImage("registry.test/app", image)}, Id(lk::kEmail, lk::kIssuer), root, image),
              "no Fulcio certificate");
  sigstore::testing::Made keyed = sigstore::testing::Make({});
  RejectedFor(VerifyWithIdentity({AsBundle(keyed.bundle)}, Id(lk::kEmail, lk::kIssuer), root, image),
              "signed with a key, not a certificate");
  // Side by side: only the keyless .sig is verified.
  KeyVerification mixed = VerifyWithIdentity({AsBundle(keyed.bundle), good, k.SignImage("registry.test/app", image)},
                                             Id(lk::kEmail, lk::kIssuer), root, image);
  CHECK(mixed.verified.size() == 1);
  CHECK(mixed.rejected.size() == 2);
}

}  // namespace
}  // namespace portcullis::verifier
