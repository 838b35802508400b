// sign --bundle's bundle (signer/bundle_sign.h), checked by the verifier the
// proxy gate uses (verifier/bundle_check.h) as a signature of the image: it
// verifies with the signing key only, for this manifest only.
#include <doctest/doctest.h>

#include "keys/key.h"
#include "signer/bundle_sign.h"
#include "verifier/bundle_check.h"
#include "verifier/sigstore/bundle.h"
#include "verifier/sigstore/synthetic_bundle_test_util.h"

namespace portcullis::signer {
namespace {

verifier::BundleCheck Check(const std::string& bundle, const oci::Digest& digest, const keys::PublicKey& key) {
  verifier::FoundSignature f;
  f.bundle = true;
  f.payload = bundle;
  auto root = verifier::sigstore::TrustedRoot::PublicGood();
  REQUIRE(root.ok());
  std::string der = *key.Der();
  return verifier::CheckBundle(f, *root, digest, nullptr, &der);
}

TEST_CASE("sign --bundle: a key-based v0.3 bundle over the manifest, no log entry") {
  const std::string manifest = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"})";
  const oci::Digest digest = oci::Digest::Sha256Of(manifest);
  auto key = keys::PrivateKey::Generate(keys::KeyType::kEcdsaP256);
  REQUIRE(key.ok());
  auto bundle = MakeKeyBundle(manifest, *key);
  REQUIRE_MESSAGE(bundle.ok(), bundle.status().ToString());
  auto parsed = verifier::sigstore::ParseBundle(*bundle);
  REQUIRE_MESSAGE(parsed.ok(), parsed.status().ToString());
  CHECK(parsed->minor_version == 3);
  CHECK(parsed->has_public_key);
  CHECK(parsed->tlog_entries.empty());
  CHECK(parsed->message_digest_algorithm == "SHA2_256");

  auto ok = Check(*bundle, digest, *key->GetPublicKey());
  CHECK_MESSAGE(ok.kind == verifier::BundleCheck::Kind::kVerified, ok.detail);
  // Attacks: another key, another image, a bundle for another manifest relabelled.
  auto other = keys::PrivateKey::Generate(keys::KeyType::kEcdsaP256);
  REQUIRE(other.ok());
  auto wrong_key = Check(*bundle, digest, *other->GetPublicKey());
  CHECK(wrong_key.kind == verifier::BundleCheck::Kind::kRefused);
  CHECK(wrong_key.detail.find("does not verify") != std::string::npos);
  auto wrong_image = Check(*bundle, oci::Digest::Sha256Of("another manifest"), *key->GetPublicKey());
  CHECK(wrong_image.kind == verifier::BundleCheck::Kind::kRefused);
  CHECK(wrong_image.detail.find("message digest is not the artifact's") != std::string::npos);
  // Ed25519 is refused (its signature needs the manifest bytes, not the digest).
  auto ed = keys::PrivateKey::Generate(keys::KeyType::kEd25519);
  REQUIRE(ed.ok());
  auto refused = MakeKeyBundle(manifest, *ed);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().message().find("ECDSA P-256 or RSA") != std::string::npos);
}

TEST_CASE("key-based bundle attack: a log entry is verified, never skipped; only a bundle without one is untimed") {
  namespace st = verifier::sigstore::testing;
  st::Made m = st::Make(st::Options{});
  const oci::Digest digest = oci::Digest::Sha256Of(st::kArtifact);
  auto own = verifier::sigstore::TrustedRoot::Parse(m.root);
  auto public_good = verifier::sigstore::TrustedRoot::PublicGood();
  REQUIRE(own.ok());
  REQUIRE(public_good.ok());
  verifier::FoundSignature f;
  f.bundle = true;
  f.payload = m.bundle;
  auto logged = verifier::CheckBundle(f, *own, digest, nullptr, &m.key_der);
  CHECK_MESSAGE(logged.kind == verifier::BundleCheck::Kind::kVerified, logged.detail);
  // The same bundle against a root that does not trust its log: refused, not accepted untimed.
  auto untrusted_log = verifier::CheckBundle(f, *public_good, digest, nullptr, &m.key_der);
  CHECK(untrusted_log.kind == verifier::BundleCheck::Kind::kRefused);
  CHECK(untrusted_log.detail.find("not in the trusted root") != std::string::npos);
  // Its log entry stripped: the signature alone, still only for its key and artifact.
  auto j = nlohmann::json::parse(m.bundle);
  j["verificationMaterial"].erase("tlogEntries");
  f.payload = j.dump();
  auto untimed = verifier::CheckBundle(f, *public_good, digest, nullptr, &m.key_der);
  CHECK_MESSAGE(untimed.kind == verifier::BundleCheck::Kind::kVerified, untimed.detail);
  auto other = keys::PrivateKey::Generate(keys::KeyType::kEcdsaP256);
  REQUIRE(other.ok());
  std::string other_der = *other->GetPublicKey()->Der();
  CHECK(verifier::CheckBundle(f, *public_good, digest, nullptr, &other_der).kind ==
        verifier::BundleCheck::Kind::kRefused);
  CHECK(verifier::CheckBundle(f, *public_good, oci::Digest::Sha256Of("x"), nullptr, &m.key_der).kind ==
        verifier::BundleCheck::Kind::kRefused);
}

}  // namespace
}  // namespace portcullis::signer
