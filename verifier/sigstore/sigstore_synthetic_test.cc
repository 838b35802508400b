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
#include "verifier/sigstore/verify.h"

namespace portcullis::verifier::sigstore {
namespace {

using nlohmann::json;
using oci::Base64Encode;

constexpr int64_t kTime = 1700000000;  // 2023-11-14T22:13:20Z
constexpr const char* kHost = "log.test.example";

std::string Pem(const keys::PublicKey& k) { return *k.Pem(); }

struct Options {
  keys::KeyType key_type = keys::KeyType::kEcdsaP256;
  bool dsse = false;
  bool corrupt_signature = false;  // the bundle and the log both hold a wrong signature
  std::string statement_digest;    // DSSE subject digest (default: the artifact's)
  int64_t integrated_time = kTime;
  std::string log_valid_from = "2020-01-01T00:00:00Z";
  std::string checkpoint_origin = std::string(kHost) + " - 42";
  std::string payload_type = "application/vnd.in-toto+json";
};

struct Made {
  std::string bundle, root, key_der;
};

const std::string kArtifact = "synthetic artifact\n";

Made Make(const Options& o) {
  auto signer = keys::PrivateKey::Generate(o.key_type);
  auto log_key = keys::PrivateKey::Generate(keys::KeyType::kEcdsaP256);
  REQUIRE(signer.ok());
  REQUIRE(log_key.ok());
  auto signer_pub = signer->GetPublicKey();
  auto log_pub = log_key->GetPublicKey();
  std::string log_der = *log_pub->Der();
  std::string log_id = Sha256(log_der);

  // What is signed, and the signature (maybe corrupted: the log records it as is).
  std::string payload, signed_bytes;
  if (o.dsse) {
    std::string subject = o.statement_digest.empty() ? Hex(Sha256(kArtifact)) : o.statement_digest;
    payload = json{{"_type", "https://in-toto.io/Statement/v1"},
                   {"subject", json::array({{{"name", "a"}, {"digest", {{"sha256", subject}}}}})},
                   {"predicateType", "https://slsa.dev/provenance/v1"},
                   {"predicate", json::object()}}
                  .dump();
    signed_bytes = "DSSEv1 " + std::to_string(o.payload_type.size()) + " " + o.payload_type + " " +
                   std::to_string(payload.size()) + " " + payload;
  } else {
    signed_bytes = kArtifact;
  }
  std::string sig = *signer->Sign(signed_bytes);
  if (o.corrupt_signature) sig = *signer->Sign(signed_bytes + "x");

  json body;
  if (o.dsse) {
    body = {{"apiVersion", "0.0.1"},
            {"kind", "dsse"},
            {"spec",
             {{"payloadHash", {{"algorithm", "sha256"}, {"value", Hex(Sha256(payload))}}},
              {"signatures",
               json::array({{{"signature", Base64Encode(sig)}, {"verifier", Base64Encode(Pem(*signer_pub))}}})}}}};
  } else {
    body = {{"apiVersion", "0.0.1"},
            {"kind", "hashedrekord"},
            {"spec",
             {{"data", {{"hash", {{"algorithm", "sha256"}, {"value", Hex(Sha256(kArtifact))}}}}},
              {"signature",
               {{"content", Base64Encode(sig)}, {"publicKey", {{"content", Base64Encode(Pem(*signer_pub))}}}}}}}};
  }
  std::string body_bytes = body.dump();

  // A two-leaf tree: some other entry at 0, ours at 1.
  std::string leaf0 = Sha256(std::string("\x00", 1) + "another entry");
  std::string leaf1 = Sha256(std::string("\x00", 1) + body_bytes);
  std::string root_hash = Sha256("\x01" + leaf0 + leaf1);
  std::string note = o.checkpoint_origin + "\n2\n" + Base64Encode(root_hash) + "\n";
  std::string note_sig = *log_key->Sign(note);
  std::string checkpoint = note + "\n\xE2\x80\x94 " + kHost + " " + Base64Encode(log_id.substr(0, 4) + note_sig) + "\n";
  std::string set_payload = "{\"body\":\"" + Base64Encode(body_bytes) +
                            "\",\"integratedTime\":" + std::to_string(o.integrated_time) + ",\"logID\":\"" +
                            Hex(log_id) + "\",\"logIndex\":7}";
  std::string set = *log_key->Sign(set_payload);

  json entry = {{"logIndex", "7"},
                {"logId", {{"keyId", Base64Encode(log_id)}}},
                {"kindVersion", {{"kind", o.dsse ? "dsse" : "hashedrekord"}, {"version", "0.0.1"}}},
                {"integratedTime", std::to_string(o.integrated_time)},
                {"inclusionPromise", {{"signedEntryTimestamp", Base64Encode(set)}}},
                {"inclusionProof",
                 {{"logIndex", "1"},
                  {"rootHash", Base64Encode(root_hash)},
                  {"treeSize", "2"},
                  {"hashes", json::array({Base64Encode(leaf0)})},
                  {"checkpoint", {{"envelope", checkpoint}}}}},
                {"canonicalizedBody", Base64Encode(body_bytes)}};
  json bundle = {{"mediaType", "application/vnd.dev.sigstore.bundle.v0.3+json"},
                 {"verificationMaterial", {{"publicKey", {{"hint", "test"}}}, {"tlogEntries", json::array({entry})}}}};
  if (o.dsse) {
    bundle["dsseEnvelope"] = {{"payload", Base64Encode(payload)},
                              {"payloadType", o.payload_type},
                              {"signatures", json::array({{{"sig", Base64Encode(sig)}}})}};
  } else {
    bundle["messageSignature"] = {
        {"messageDigest", {{"algorithm", "SHA2_256"}, {"digest", Base64Encode(Sha256(kArtifact))}}},
        {"signature", Base64Encode(sig)}};
  }
  json root = {{"mediaType", "application/vnd.dev.sigstore.trustedroot+json;version=0.1"},
               {"tlogs", json::array({{{"baseUrl", std::string("https://") + kHost},
                                       {"hashAlgorithm", "SHA2_256"},
                                       {"publicKey",
                                        {{"rawBytes", Base64Encode(log_der)},
                                         {"keyDetails", "PKIX_ECDSA_P256_SHA_256"},
                                         {"validFor", {{"start", o.log_valid_from}}}}},
                                       {"logId", {{"keyId", Base64Encode(log_id)}}}}})}};
  return {bundle.dump(), root.dump(), *signer_pub->Der()};
}

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
