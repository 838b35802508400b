// Test helper (not part of the library): key-based Sigstore bundles made here
// with keys made here, logged by a test "Rekor v1" log whose key is in a
// trusted root built alongside, so each later check can be attacked on its own.
// Message signatures sign kArtifact (whose sha256 may stand for an image
// digest); DSSE bundles carry an in-toto statement about `statement_digest`
// (default: kArtifact's sha256). Signatures are made with keys/, not with the
// code under test. Used by sigstore_synthetic_test.cc and the policy tests.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "keys/key.h"
#include "oci/base64.h"
#include "verifier/sigstore/crypto.h"

namespace portcullis::verifier::sigstore::testing {

using nlohmann::json;
using oci::Base64Encode;

constexpr int64_t kTime = 1700000000;  // 2023-11-14T22:13:20Z
constexpr const char* kHost = "log.test.example";

inline std::string Pem(const keys::PublicKey& k) { return *k.Pem(); }

struct Options {
  keys::KeyType key_type = keys::KeyType::kEcdsaP256;
  bool dsse = false;
  bool corrupt_signature = false;  // the bundle and the log both hold a wrong signature
  std::string statement_digest;    // DSSE subject digest (default: the artifact's)
  int64_t integrated_time = kTime;
  std::string log_valid_from = "2020-01-01T00:00:00Z";
  std::string checkpoint_origin = std::string(kHost) + " - 42";
  std::string payload_type = "application/vnd.in-toto+json";
  std::string predicate_type = "https://slsa.dev/provenance/v1";
};

struct Made {
  std::string bundle, root, key_der, key_pem;  // the bundle, its trusted root, the signer's public key
};

inline const std::string kArtifact = "synthetic artifact\n";

inline Made Make(const Options& o) {
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
                   {"predicateType", o.predicate_type},
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
  return {bundle.dump(), root.dump(), *signer_pub->Der(), Pem(*signer_pub)};
}

}  // namespace portcullis::verifier::sigstore::testing
