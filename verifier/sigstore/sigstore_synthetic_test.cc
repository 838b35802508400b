// Bundles made here, with keys made here: a test "Rekor v1" log (its key in a
// trusted root built by the test) logs key-based message-signature and DSSE
// bundles, so each later check can be attacked on its own: a log that faithfully
// recorded a bad signature, a statement about another artifact, a log key not
// valid at the integrated time, an integrated time in the future, a checkpoint of
// another origin. Signatures are made with keys/ (not with the code under test).
#include <doctest/doctest.h>

#include <ctime>
#include <nlohmann/json.hpp>
#include <string>

#include "keys/key.h"
#include "oci/base64.h"
#include "verifier/sigstore/crypto.h"
#include "verifier/sigstore/synthetic_bundle_test_util.h"
#include "verifier/sigstore/verify.h"

namespace portcullis::verifier::sigstore {
namespace {

using nlohmann::json;
using testing::kArtifact;
using testing::kHost;
using testing::Made;
using testing::Make;
using testing::Options;

Status Check(const Made& m, bool by_digest = false, const std::string& artifact = kArtifact) {
  auto root = TrustedRoot::Parse(m.root);
  if (!root.ok()) return root.status();
  auto bundle = ParseBundle(m.bundle);
  if (!bundle.ok()) return bundle.status();
  Artifact a = Artifact::FromBytes(artifact);
  if (by_digest) a.bytes.reset();
  VerifyOptions opt;
  opt.key_der = m.key_der;
  return VerifyBundle(*bundle, *root, a, opt).status();
}

void Refused(const Status& st, const std::string& reason) {
  INFO(st.ToString());
  CHECK_FALSE(st.ok());
  CHECK(st.message().find(reason) != std::string::npos);
}

TEST_CASE("sigstore synthetic: key-based message and DSSE bundles from a test log verify") {
  for (auto type : {keys::KeyType::kEcdsaP256, keys::KeyType::kEcdsaP384, keys::KeyType::kEd25519}) {
    Options o;
    o.key_type = type;
    INFO(keys::KeyTypeName(type));
    Made m = Make(o);
    CHECK(Check(m).ok());
    o.dsse = true;
    CHECK(Check(Make(o)).ok());
    CHECK(Check(Make(o), /*by_digest=*/true).ok());  // DSSE signs the PAE: the digest suffices
  }
  CHECK(Check(Make(Options{}), /*by_digest=*/true).ok());
}

TEST_CASE("sigstore synthetic attack: a bad signature the log faithfully recorded is refused") {
  Options o;
  o.corrupt_signature = true;
  Refused(Check(Make(o)), "the signature over the artifact does not verify");
  Refused(Check(Make(o), true), "the signature over the artifact does not verify");
  o.dsse = true;
  Refused(Check(Make(o)), "the DSSE envelope signature does not verify");
  o.key_type = keys::KeyType::kEd25519;
  Refused(Check(Make(o)), "the DSSE envelope signature does not verify");
}

TEST_CASE("sigstore synthetic attack: another artifact, another subject, another payload type") {
  Refused(Check(Make(Options{}), false, "another artifact\n"), "artifact");
  Options o;
  o.dsse = true;
  o.statement_digest = std::string(64, 'a');
  Refused(Check(Make(o)), "not among the in-toto statement's subjects");
  Options p;
  p.dsse = true;
  p.payload_type = "application/vnd.example+json";
  Refused(Check(Make(p)), "unsupported: DSSE payload type");
}

TEST_CASE("sigstore synthetic: what needs the artifact bytes is unsupported with a digest, never accepted") {
  Options o;
  o.key_type = keys::KeyType::kEd25519;
  Made m = Make(o);
  CHECK(Check(m).ok());
  Status st = Check(m, /*by_digest=*/true);
  CHECK(st.Is(Code::kUnsupported));
  Refused(st, "unsupported");
  o.key_type = keys::KeyType::kEcdsaP384;
  Refused(Check(Make(o), true), "unsupported");
}

TEST_CASE("sigstore synthetic attack: log key not yet valid, integrated time in the future, foreign checkpoint") {
  Options o;
  o.log_valid_from = "2024-01-01T00:00:00Z";
  Refused(Check(Make(o)), "is not valid at the integrated time");
  Options f;
  f.integrated_time = static_cast<int64_t>(std::time(nullptr)) + 3600;
  Refused(Check(Make(f)), "in the future");
  Options c;
  c.checkpoint_origin = "evil.example - 42";
  Refused(Check(Make(c)), "checkpoint origin");
  Options v2;
  v2.checkpoint_origin = kHost;  // a bare host is a valid (Rekor v2 style) origin
  CHECK(Check(Make(v2)).ok());
}

TEST_CASE("sigstore synthetic attack: a key-based bundle verified with another key is refused") {
  Made m = Make(Options{});
  auto other = keys::PrivateKey::Generate(keys::KeyType::kEcdsaP256);
  REQUIRE(other.ok());
  m.key_der = *other->GetPublicKey()->Der();
  Refused(Check(m), "the logged certificate/key is not the bundle's");
}

}  // namespace
}  // namespace portcullis::verifier::sigstore
