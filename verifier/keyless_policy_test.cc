// Keyless identities and key-based Sigstore bundles in the Portcullis policy,
// written as attacks. The keyless bundle is a real one (the Sigstore
// conformance case happy-path-v0.3 in tests/vectors/, made by the public-good
// Fulcio and Rekor): its artifact's sha256 stands for the image digest being
// served. Key-based bundles are made here with a test log
// (verifier/sigstore/synthetic_bundle_test_util.h).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "verifier/bundle_check.h"
#include "verifier/policy.h"
#include "verifier/policy_test_util.h"
#include "verifier/sigstore/bundle.h"
#include "verifier/sigstore/certificate.h"
#include "verifier/sigstore/crypto.h"
#include "verifier/sigstore/synthetic_bundle_test_util.h"

namespace portcullis::verifier {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::FakeSource;
using testing::JsonQuote;
using testing::TempDir;
using testing::TestKey;

const fs::path kCases = fs::path(PORTCULLIS_SOURCE_DIR) / "tests" / "vectors" / "sigstore" / "cases";
const std::string kSubject =
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/"
    "extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const std::string kIssuer = "https://token.actions.githubusercontent.com";
const std::string kName = "ghcr.io/sigstore-conformance/app";

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The real keyless bundle and the digest it signs.
std::string KeylessBundle() { return Slurp(kCases / "happy-path-v0.3" / "bundle.sigstore.json"); }
oci::Digest SignedDigest() { return oci::Digest::Sha256Of(Slurp(kCases / "a.txt")); }

FoundSignature AsFound(const std::string& bundle_json) { return testing::BundleFound(bundle_json); }

std::shared_ptr<const Policy> Load(const std::string& text, const std::string& dir = "") {
  auto p = Policy::Parse(text, "p.json", dir);
  REQUIRE_MESSAGE(p.ok(), p.status().ToString());
  return *p;
}

std::string IdentityRule(const std::string& identity_json, const std::string& extra = "") {
  return R"({"rules":[{"match":"ghcr.io/sigstore-conformance/**","require":{"identities":[)" + identity_json + "]" +
         extra + "}}]}";
}

std::string Exact(const std::string& subject = kSubject, const std::string& issuer = kIssuer) {
  return R"({"issuer":)" + JsonQuote(issuer) + R"(,"subject":)" + JsonQuote(subject) + "}";
}

Decision Eval(const Policy& p, const oci::Digest& digest, std::vector<FoundSignature> found) {
  FakeSource src(std::move(found));
  auto d = p.Evaluate(kName, "v1", digest, src);
  REQUIRE_MESSAGE(d.ok(), d.status().ToString());
  return *d;
}

void Refused(const Decision& d, const std::string& why) {
  std::string all = d.reason;
  for (const auto& l : d.details) all += "\n  " + l;
  INFO(all);
  CHECK_FALSE(d.allowed);
  CHECK_FALSE(d.verified_by_signature());
  CHECK(d.reason.find(why) != std::string::npos);
}

TEST_CASE("keyless policy: a bundle by the required identity for the served digest is accepted") {
  auto exact = Load(IdentityRule(Exact()));
  Decision d = Eval(*exact, SignedDigest(), {AsFound(KeylessBundle())});
  INFO(d.reason);
  CHECK(d.allowed);
  CHECK(d.verified_by_signature());
  CHECK(d.keys_matched == std::vector<std::string>{"identity:" + kSubject});

  auto re = Load(IdentityRule(
      R"({"issuer_regexp":"^https://token\\.actions\\.githubusercontent\\.com$","subject_regexp":"^https://github\\.com/sigstore-conformance/.+/\\.github/workflows/.+@refs/heads/main$"})"));
  CHECK(Eval(*re, SignedDigest(), {AsFound(KeylessBundle())}).allowed);

  // The certificate's source repository claim, as the verifier reads it.
  auto b = sigstore::ParseBundle(KeylessBundle());
  REQUIRE(b.ok());
  auto leaf = sigstore::LeafFromBundle(b->certificates);
  REQUIRE(leaf.ok());
  auto id = sigstore::ExtractIdentity(*leaf);
  REQUIRE(id.ok());
  REQUIRE_FALSE(id->source_repository_uri.empty());
  auto claim = Load(IdentityRule(R"({"issuer":)" + JsonQuote(kIssuer) + R"(,"subject":)" + JsonQuote(kSubject) +
                                 R"(,"source_repository":)" + JsonQuote(id->source_repository_uri) + "}"));
  CHECK(Eval(*claim, SignedDigest(), {AsFound(KeylessBundle())}).allowed);
}

TEST_CASE("keyless policy attack: the bundle of another digest is refused") {
  auto p = Load(IdentityRule(Exact()));
  Refused(Eval(*p, oci::Digest::Sha256Of("another image"), {AsFound(KeylessBundle())}), "artifact");
}

TEST_CASE("keyless policy attack: another identity, a wrong issuer, a prefix-only regexp, another repository") {
  Refused(Eval(*Load(IdentityRule(Exact("https://github.com/org/app/.github/workflows/release.yml@refs/tags/v1"))),
               SignedDigest(), {AsFound(KeylessBundle())}),
          "does not match");
  Refused(Eval(*Load(IdentityRule(Exact(kSubject, "https://accounts.google.com"))), SignedDigest(),
               {AsFound(KeylessBundle())}),
          "OIDC issuer");
  // A regexp that matches only a prefix of the SAN: the whole value must match.
  Refused(Eval(*Load(IdentityRule(R"({"issuer":)" + JsonQuote(kIssuer) +
                                  R"(,"subject_regexp":"https://github\\.com/sigstore-conformance"})")),
               SignedDigest(), {AsFound(KeylessBundle())}),
          "does not match");
  Refused(Eval(*Load(IdentityRule(R"({"issuer_regexp":"https://token","subject":)" + JsonQuote(kSubject) + "}")),
               SignedDigest(), {AsFound(KeylessBundle())}),
          "OIDC issuer");
  Refused(Eval(*Load(IdentityRule(R"({"issuer":)" + JsonQuote(kIssuer) + R"(,"subject":)" + JsonQuote(kSubject) +
                                  R"(,"source_repository":"https://github.com/evil/repo"})")),
               SignedDigest(), {AsFound(KeylessBundle())}),
          "source repository");
}

TEST_CASE("keyless policy attack: a tampered bundle, an unusable one, and a keyless bundle under a keys-only rule") {
  json tampered = json::parse(KeylessBundle());
  std::string sig = tampered["messageSignature"]["signature"];
  sig[10] = sig[10] == 'A' ? 'B' : 'A';
  tampered["messageSignature"]["signature"] = sig;
  auto p = Load(IdentityRule(Exact()));
  Refused(Eval(*p, SignedDigest(), {AsFound(tampered.dump())}), "bundle not verified");

  FoundSignature bomb = AsFound("");
  bomb.problem = "bundle is 2000000 bytes, over the limit of 1048576";
  Refused(Eval(*p, SignedDigest(), {bomb}), "no signature by a trusted key");
  Refused(Eval(*p, SignedDigest(), {AsFound("{\"mediaType\":")}), "no signature by a trusted key");

  TestKey k = TestKey::Make();
  auto keys_only = Load(R"({"keys":{"k":{"data":)" + JsonQuote(k.pub_pem) +
                        R"(}},"rules":[{"match":"**","require":{"keys":["k"]}}]})");
  Refused(Eval(*keys_only, SignedDigest(), {AsFound(KeylessBundle())}), "no signature by a trusted key");
}

TEST_CASE("keyless policy: k-of-n over a key and an identity") {
  TestKey k = TestKey::Make();
  auto p =
      Load(R"({"keys":{"k":{"data":)" + JsonQuote(k.pub_pem) +
           R"(}},"rules":[{"match":"**","require":{"keys":["k"],"identities":[)" + Exact() + R"(],"threshold":2}}]})");
  FoundSignature by_key = k.SignImage("ghcr.io/sigstore-conformance/app", SignedDigest());
  Decision both = Eval(*p, SignedDigest(), {by_key, AsFound(KeylessBundle())});
  INFO(both.reason);
  CHECK(both.allowed);
  CHECK(both.keys_matched == std::vector<std::string>{"k", "identity:" + kSubject});
  Refused(Eval(*p, SignedDigest(), {AsFound(KeylessBundle())}), "2 of 2 keys/identities required, 1 found");
  Refused(Eval(*p, SignedDigest(), {by_key}), "2 of 2 keys/identities required, 1 found");
  // A rule that checks the signed docker-reference: a bundle carries none, so it never counts.
  auto with_ref =
      Load(R"({"rules":[{"match":"**","identity":"ghcr.io/**","require":{"identities":[)" + Exact() + "]}}]}");
  Decision d = Eval(*with_ref, SignedDigest(), {AsFound(KeylessBundle())});
  CHECK_FALSE(d.allowed);
  REQUIRE(d.details.size() == 1);
  CHECK(d.details[0].find("does not carry") != std::string::npos);
}

TEST_CASE("keyless policy: key-based bundles verify against the rule's keys and the policy's trusted root") {
  TempDir dir;
  sigstore::testing::Options o;
  sigstore::testing::Made m = sigstore::testing::Make(o);
  const oci::Digest image = oci::Digest::Sha256Of(sigstore::testing::kArtifact);
  dir.Write("root.json", m.root);
  TestKey other = TestKey::Make();
  auto policy = [&](const std::string& pem) {
    return Load(R"({"trusted_root":"root.json","keys":{"release":{"data":)" + JsonQuote(pem) +
                    R"(}},"rules":[{"match":"**","require":{"keys":["release"]}}]})",
                dir.str());
  };
  Decision ok = Eval(*policy(m.key_pem), image, {AsFound(m.bundle)});
  INFO(ok.reason);
  CHECK(ok.allowed);
  CHECK(ok.keys_matched == std::vector<std::string>{"release"});
  // Attack: the same bundle under a rule trusting another key.
  Refused(Eval(*policy(other.pub_pem), image, {AsFound(m.bundle)}), "bundle not verified for release");
  // Attack: another digest.
  Refused(Eval(*policy(m.key_pem), oci::Digest::Sha256Of("x"), {AsFound(m.bundle)}), "bundle not verified");
  // Attack: the built-in root does not know the test log.
  auto public_good = Load(R"({"keys":{"release":{"data":)" + JsonQuote(m.key_pem) +
                          R"(}},"rules":[{"match":"**","require":{"keys":["release"]}}]})");
  Refused(Eval(*public_good, image, {AsFound(m.bundle)}), "not in the trusted root");

  // cosign v3's DSSE image signature (predicate sign/v1) about the image: accepted.
  sigstore::testing::Options sign;
  sign.dsse = true;
  sign.predicate_type = std::string(kCosignSignPredicateType);
  sign.statement_digest = image.hex();
  sigstore::testing::Made s = sigstore::testing::Make(sign);
  dir.Write("root.json", s.root);
  CHECK(Eval(*policy(s.key_pem), image, {AsFound(s.bundle)}).allowed);
  // Attack: a provenance attestation about the image is not a signature of it.
  sigstore::testing::Options att = sign;
  att.predicate_type = "https://slsa.dev/provenance/v1";
  sigstore::testing::Made a = sigstore::testing::Make(att);
  dir.Write("root.json", a.root);
  Refused(Eval(*policy(a.key_pem), image, {AsFound(a.bundle)}), "not a cosign image signature");
  // Attack: a statement about another image.
  sigstore::testing::Options elsewhere = sign;
  elsewhere.statement_digest = std::string(64, 'b');
  sigstore::testing::Made e = sigstore::testing::Make(elsewhere);
  dir.Write("root.json", e.root);
  Refused(Eval(*policy(e.key_pem), image, {AsFound(e.bundle)}), "subjects");
}

TEST_CASE("keyless policy: containers-policy.json key checks ignore bundles") {
  TestKey k = TestKey::Make();
  TempDir dir;
  dir.Write("k.pub", k.pub_pem);
  auto p =
      Load(R"({"default":[{"type":"sigstoreSigned","keyPath":"k.pub","signedIdentity":{"type":"matchRepository"}}]})",
           dir.str());
  Decision d = Eval(*p, SignedDigest(), {AsFound(KeylessBundle())});
  CHECK_FALSE(d.allowed);
  CHECK(d.keys_matched.empty());
}

TEST_CASE("keyless policy: load errors name the field; policy check describes identities") {
  auto err = [](const std::string& text) {
    auto p = Policy::Parse(text, "p.json", "");
    REQUIRE_FALSE(p.ok());
    return p.status().message();
  };
  CHECK(err(IdentityRule(R"({"issuer":"i","subject":"s","sub":"x"})")).find("unknown field \"sub\"") !=
        std::string::npos);
  CHECK(err(IdentityRule(R"({"issuer":"i","subject":"s","subject_regexp":"s"})"))
            .find("exactly one of \"subject\" and \"subject_regexp\"") != std::string::npos);
  CHECK(err(IdentityRule(R"({"subject":"s"})")).find("exactly one of \"issuer\"") != std::string::npos);
  CHECK(err(IdentityRule(R"({"issuer":"i","subject_regexp":"("})")).find("subject_regexp: not a valid regular") !=
        std::string::npos);
  CHECK(err(IdentityRule(R"({"issuer":"i","subject":"s"})", R"(,"threshold":2)"))
            .find("rules[0].require.threshold: 2 is more than the 1 listed keys and identities") != std::string::npos);
  CHECK(err(IdentityRule(R"({"issuer":"i","subject":"s"},{"issuer":"i","subject":"s"})")).find("listed twice") !=
        std::string::npos);
  CHECK(err(R"({"rules":[{"match":"**","require":{"threshold":1}}]})").find("needs \"keys\" or \"identities\"") !=
        std::string::npos);
  CHECK(err(R"({"rules":[{"match":"**","require":{"identities":[]}}]})").find("non-empty array") != std::string::npos);
  CHECK(err(R"({"trusted_root":"/nonexistent/root.json","rules":[]})").find("trusted_root") != std::string::npos);
  // fulcio in containers-policy.json without a CA and a Rekor key is refused at load.
  CHECK_FALSE(Policy::Parse(R"({"default":[{"type":"sigstoreSigned","fulcio":{"oidcIssuer":"i","subjectEmail":"e"}}]})",
                            "c.json", "")
                  .ok());

  std::string explain = Load(IdentityRule(Exact()))->Explain();
  CHECK(explain.find("identity:" + kSubject) != std::string::npos);
  CHECK(explain.find("built-in public-good") != std::string::npos);
  CHECK(explain.find("issuer \"" + kIssuer + "\"") != std::string::npos);
}

}  // namespace
}  // namespace portcullis::verifier
