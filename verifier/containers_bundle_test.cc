// Sigstore bundles (cosign v3 referrers) under containers-policy.json
// sigstoreSigned (verifier/containers_bundle.h), written as attacks: a bundle
// by a foreign key, a bundle for another digest, a keyless bundle with the
// wrong identity, from a foreign CA or logged by a foreign Rekor key, and
// signedIdentity types a bundle cannot satisfy. The untouched fixture is
// accepted first, so each refusal is for its reason. Key-based bundles come from
// verifier/sigstore/synthetic_bundle_test_util.h; keyless v0.1 bundles are made
// here from the OpenSSL Fulcio and Rekor of verifier/legacy_keyless_test_util.h.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "oci/base64.h"
#include "verifier/legacy_keyless_test_util.h"
#include "verifier/policy.h"
#include "verifier/policy_test_util.h"
#include "verifier/sigstore/synthetic_bundle_test_util.h"

namespace portcullis::verifier {
namespace {

namespace lk = testing::legacy;
using nlohmann::json;
using testing::FakeSource;
using testing::JsonQuote;
using testing::TestKey;

const std::string kName = "registry.example.com/app/server";

FoundSignature AsBundle(const std::string& bundle_json) { return testing::BundleFound(bundle_json); }

std::shared_ptr<const Policy> Containers(const std::string& requirement) {
  auto p = Policy::Parse(R"({"default":[{"type":"reject"}],"transports":{"docker":{"registry.example.com":[)" +
                             requirement + "]}}}",
                         "policy.json", "");
  REQUIRE_MESSAGE(p.ok(), p.status().ToString());
  return *p;
}

Decision Eval(const Policy& p, std::vector<FoundSignature> found, const oci::Digest& digest) {
  FakeSource src(std::move(found));
  auto d = p.Evaluate(kName, "v1", digest, src);
  REQUIRE_MESSAGE(d.ok(), d.status().ToString());
  return *d;
}

std::string Why(const Decision& d) {
  std::string s = d.reason;
  for (const auto& l : d.details) s += "\n  " + l;
  return s;
}

void Refused(const Decision& d, const std::string& reason) {
  INFO(Why(d));
  CHECK_FALSE(d.allowed);
  CHECK(d.keys_matched.empty());
  CHECK_MESSAGE(d.reason.find(reason) != std::string::npos, "want: " << reason);
}

std::string B64(const std::string& s) { return JsonQuote(oci::Base64Encode(s)); }

std::string KeyRequirement(const std::string& key_pem, const std::string& identity = "matchRepository",
                           const std::string& rekor_pem = "") {
  std::string r = R"({"type":"sigstoreSigned","keyData":)" + B64(key_pem);
  if (!rekor_pem.empty()) r += R"(,"rekorPublicKeyData":)" + B64(rekor_pem);
  return r + R"(,"signedIdentity":{"type":")" + identity + R"("}})";
}

// The bundle without its log entry (portcullis sign --bundle, cosign --tlog-upload=false).
std::string Untimed(const std::string& bundle) {
  json j = json::parse(bundle);
  j["verificationMaterial"].erase("tlogEntries");
  return j.dump();
}

// The PEM of the synthetic test log's key, from its trusted root.
std::string LogKeyPem(const std::string& root_json) {
  json root = json::parse(root_json);
  auto der = oci::Base64Decode(root["tlogs"][0]["publicKey"]["rawBytes"].get<std::string>());
  REQUIRE(der.has_value());
  auto k = keys::PublicKey::FromDer(*der);
  REQUIRE(k.ok());
  return *k->Pem();
}

TEST_CASE("containers-policy bundles: a key-based bundle satisfies keyData; a foreign key, another digest do not") {
  sigstore::testing::Made m = sigstore::testing::Make(sigstore::testing::Options{});
  const oci::Digest image = oci::Digest::Sha256Of(sigstore::testing::kArtifact);
  const std::string bundle = Untimed(m.bundle);

  Decision ok = Eval(*Containers(KeyRequirement(m.key_pem)), {AsBundle(bundle)}, image);
  INFO(Why(ok));
  CHECK(ok.allowed);
  CHECK(ok.keys_matched == std::vector<std::string>{"keyData"});
  // Default signedIdentity (matchRepoDigestOrExact) too.
  CHECK(Eval(*Containers(R"({"type":"sigstoreSigned","keyData":)" + B64(m.key_pem) + "}"), {AsBundle(bundle)}, image)
            .allowed);
  // A bundle with a log entry, without Rekor keys: the signature alone decides (as for a .sig).
  CHECK(Eval(*Containers(KeyRequirement(m.key_pem)), {AsBundle(m.bundle)}, image).allowed);

  // Attack: a bundle by a foreign key.
  TestKey other = TestKey::Make();
  Refused(Eval(*Containers(KeyRequirement(other.pub_pem)), {AsBundle(bundle)}, image),
          "no signature by a trusted key (1 signature found");
  // Attack: the bundle of another digest (relabelled as this image's referrer).
  Refused(Eval(*Containers(KeyRequirement(m.key_pem)), {AsBundle(bundle)}, oci::Digest::Sha256Of("other image")),
          "message digest is not the artifact");
  // Attack: a DSSE statement about another image, and an attestation about this one.
  sigstore::testing::Options dsse;
  dsse.dsse = true;
  dsse.predicate_type = "https://sigstore.dev/cosign/sign/v1";
  dsse.statement_digest = std::string(64, 'b');
  sigstore::testing::Made e = sigstore::testing::Make(dsse);
  Refused(Eval(*Containers(KeyRequirement(e.key_pem)), {AsBundle(Untimed(e.bundle))}, image), "subjects");
  dsse.statement_digest = image.hex();
  dsse.predicate_type = "https://slsa.dev/provenance/v1";
  sigstore::testing::Made a = sigstore::testing::Make(dsse);
  Refused(Eval(*Containers(KeyRequirement(a.key_pem)), {AsBundle(Untimed(a.bundle))}, image),
          "not a cosign image signature");
  dsse.predicate_type = "https://sigstore.dev/cosign/sign/v1";
  sigstore::testing::Made s = sigstore::testing::Make(dsse);
  CHECK(Eval(*Containers(KeyRequirement(s.key_pem)), {AsBundle(Untimed(s.bundle))}, image).allowed);
}

TEST_CASE("containers-policy bundles: signedIdentity types that name what was signed refuse a bundle") {
  sigstore::testing::Made m = sigstore::testing::Make(sigstore::testing::Options{});
  const oci::Digest image = oci::Digest::Sha256Of(sigstore::testing::kArtifact);
  const std::string bundle = Untimed(m.bundle);
  Refused(Eval(*Containers(KeyRequirement(m.key_pem, "matchExact")), {AsBundle(bundle)}, image),
          "a Sigstore bundle signs the digest only");
  const std::string exact_repo = R"({"type":"sigstoreSigned","keyData":)" + B64(m.key_pem) +
                                 R"(,"signedIdentity":{"type":"exactRepository","dockerRepository":")" + kName +
                                 R"("}})";
  Refused(Eval(*Containers(exact_repo), {AsBundle(bundle)}, image), "cannot hold for it");
}

TEST_CASE("containers-policy bundles: Rekor keys need the bundle's SET by one of them") {
  sigstore::testing::Made m = sigstore::testing::Make(sigstore::testing::Options{});
  const oci::Digest image = oci::Digest::Sha256Of(sigstore::testing::kArtifact);
  const std::string log_pem = LogKeyPem(m.root);
  Decision ok = Eval(*Containers(KeyRequirement(m.key_pem, "matchRepository", log_pem)), {AsBundle(m.bundle)}, image);
  INFO(Why(ok));
  CHECK(ok.allowed);
  // Attack: the SET is by a log whose key is not listed.
  TestKey other = TestKey::Make();
  Refused(Eval(*Containers(KeyRequirement(m.key_pem, "matchRepository", other.pub_pem)), {AsBundle(m.bundle)}, image),
          "not by any of the requirement's Rekor keys");
  // Attack: no log entry at all.
  Refused(Eval(*Containers(KeyRequirement(m.key_pem, "matchRepository", log_pem)), {AsBundle(Untimed(m.bundle))},
               image),
          "the bundle has no log entry");
}

// A keyless v0.1 bundle: a message signature over `manifest` by a fresh leaf of
// `fulcio` (leaf and intermediate in the bundle), logged (hashedrekord 0.0.1,
// SET) by `rekor`.
struct KeylessOptions {
  lk::CertOptions leaf = lk::Leaf();
  bool set_by_other_key = false;
};

std::string KeylessBundle(const std::string& manifest, const lk::Fulcio& fulcio, EVP_PKEY* rekor,
                          const KeylessOptions& o = KeylessOptions()) {
  lk::Key leaf_key = lk::NewKey();
  lk::X509Ptr leaf = lk::MakeCert(o.leaf, leaf_key.get(), fulcio.inter.get(), fulcio.inter_key.get());
  const std::string sig = lk::SignSha256(leaf_key.get(), manifest);
  const std::string digest = sigstore::Sha256(manifest);
  json body = {{"apiVersion", "0.0.1"},
               {"kind", "hashedrekord"},
               {"spec",
                {{"data", {{"hash", {{"algorithm", "sha256"}, {"value", sigstore::Hex(digest)}}}}},
                 {"signature",
                  {{"content", oci::Base64Encode(sig)},
                   {"publicKey", {{"content", oci::Base64Encode(lk::CertPem(leaf.get()))}}}}}}}};
  const std::string body_text = body.dump();
  const std::string log_id = sigstore::Sha256(lk::SpkiDer(rekor));
  const std::string set_payload = "{\"body\":\"" + oci::Base64Encode(body_text) +
                                  "\",\"integratedTime\":" + std::to_string(lk::kSetTime) + ",\"logID\":\"" +
                                  sigstore::Hex(log_id) + "\",\"logIndex\":42}";
  lk::Key other = lk::NewKey();
  const std::string set = lk::SignSha256(o.set_by_other_key ? other.get() : rekor, set_payload);
  json b = {
      {"mediaType", "application/vnd.dev.sigstore.bundle+json;version=0.1"},
      {"verificationMaterial",
       {{"x509CertificateChain",
         {{"certificates", json::array({{{"rawBytes", oci::Base64Encode(lk::CertDerOf(leaf.get()))}},
                                        {{"rawBytes", oci::Base64Encode(lk::CertDerOf(fulcio.inter.get()))}}})}}},
        {"tlogEntries", json::array({{{"logIndex", "42"},
                                      {"logId", {{"keyId", oci::Base64Encode(log_id)}}},
                                      {"kindVersion", {{"kind", "hashedrekord"}, {"version", "0.0.1"}}},
                                      {"integratedTime", std::to_string(lk::kSetTime)},
                                      {"inclusionPromise", {{"signedEntryTimestamp", oci::Base64Encode(set)}}},
                                      {"canonicalizedBody", oci::Base64Encode(body_text)}}})}}},
      {"messageSignature",
       {{"messageDigest", {{"algorithm", "SHA2_256"}, {"digest", oci::Base64Encode(digest)}}},
        {"signature", oci::Base64Encode(sig)}}}};
  return b.dump();
}

std::string FulcioRequirement(const std::string& ca_pem, EVP_PKEY* rekor, const std::string& issuer = lk::kIssuer,
                              const std::string& email = lk::kEmail) {
  return R"({"type":"sigstoreSigned","fulcio":{"caData":)" + B64(ca_pem) + R"(,"oidcIssuer":)" + JsonQuote(issuer) +
         R"(,"subjectEmail":)" + JsonQuote(email) + R"(},"rekorPublicKeyData":)" + B64(lk::PubPem(rekor)) +
         R"(,"signedIdentity":{"type":"matchRepository"}})";
}

TEST_CASE("containers-policy bundles: a keyless bundle satisfies fulcio; wrong identity, CA, Rekor key do not") {
  lk::Fulcio fulcio;
  lk::Key rekor = lk::NewKey();
  const std::string manifest = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"})";
  const oci::Digest image = oci::Digest::Sha256Of(manifest);
  const std::string bundle = KeylessBundle(manifest, fulcio, rekor.get());

  Decision ok = Eval(*Containers(FulcioRequirement(fulcio.RootPem(), rekor.get())), {AsBundle(bundle)}, image);
  INFO(Why(ok));
  CHECK(ok.allowed);
  CHECK(ok.keys_matched == std::vector<std::string>{"fulcio " + lk::kEmail + " (" + lk::kIssuer + ")"});

  // Attack: a policy naming another identity (email, then issuer).
  Refused(Eval(*Containers(FulcioRequirement(fulcio.RootPem(), rekor.get(), lk::kIssuer, "mallory@example.com")),
               {AsBundle(bundle)}, image),
          "required email \"mallory@example.com\" not found");
  Refused(Eval(*Containers(FulcioRequirement(fulcio.RootPem(), rekor.get(), "https://other.example.com")),
               {AsBundle(bundle)}, image),
          "required OIDC issuer \"https://other.example.com\"");
  // Attack: a certificate from a foreign CA (the bundle carries its own intermediate).
  lk::Fulcio foreign;
  Refused(Eval(*Containers(FulcioRequirement(fulcio.RootPem(), rekor.get())),
               {AsBundle(KeylessBundle(manifest, foreign, rekor.get()))}, image),
          "does not chain to a trusted Fulcio CA");
  // Attack: the SET is not by the Rekor key, or the log is another one.
  KeylessOptions forged;
  forged.set_by_other_key = true;
  Refused(Eval(*Containers(FulcioRequirement(fulcio.RootPem(), rekor.get())),
               {AsBundle(KeylessBundle(manifest, fulcio, rekor.get(), forged))}, image),
          "bundle not verified");
  lk::Key other_log = lk::NewKey();
  Refused(Eval(*Containers(FulcioRequirement(fulcio.RootPem(), other_log.get())), {AsBundle(bundle)}, image),
          "not by any of the requirement's Rekor keys");
  // Attack: the bundle of another image.
  Refused(Eval(*Containers(FulcioRequirement(fulcio.RootPem(), rekor.get())), {AsBundle(bundle)},
               oci::Digest::Sha256Of("another manifest")),
          "bundle not verified");
  // Attack: a keyless bundle offered to a key requirement; a key bundle to fulcio.
  TestKey k = TestKey::Make();
  CHECK_FALSE(Eval(*Containers(KeyRequirement(k.pub_pem)), {AsBundle(bundle)}, image).allowed);
  sigstore::testing::Made m = sigstore::testing::Make(sigstore::testing::Options{});
  CHECK_FALSE(Eval(*Containers(FulcioRequirement(fulcio.RootPem(), rekor.get())), {AsBundle(Untimed(m.bundle))},
                   oci::Digest::Sha256Of(sigstore::testing::kArtifact))
                  .allowed);
}

}  // namespace
}  // namespace portcullis::verifier
