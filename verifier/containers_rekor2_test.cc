// Rekor v2 bundles (no SET: a checkpoint, an inclusion proof and an RFC 3161
// timestamp) under containers-policy.json sigstoreSigned with fulcio and Rekor
// keys (verifier/containers_bundle.h): verified against a trusted root's Rekor v2
// log and TSAs. Written as attacks: the untouched bundle is accepted first, then
// one property is broken at a time (no trusted root, a log the root does not
// hold, no timestamp, a timestamp by a TSA the root does not hold, a tampered
// inclusion proof, a checkpoint by another key, another identity, a foreign CA,
// another image). Everything is made here with OpenSSL: the Fulcio of
// verifier/legacy_keyless_test_util.h, a test TSA (OpenSSL's TS_RESP_CTX), a
// test Rekor v2 log (ECDSA P-256 checkpoints, hashedrekord 0.0.2 body).
#include <doctest/doctest.h>
#include <openssl/ts.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "oci/base64.h"
#include "verifier/containers_bundle.h"
#include "verifier/legacy_keyless_test_util.h"
#include "verifier/policy.h"
#include "verifier/policy_test_util.h"

namespace portcullis::verifier {
namespace {

namespace lk = testing::legacy;
using nlohmann::json;
using oci::Base64Encode;

constexpr const char* kLogHost = "log2025.test.example";
const std::string kManifest = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"})";

// A test timestamp authority: root CA -> TSA certificate (critical timeStamping EKU).
struct Tsa {
  lk::Key root_key = lk::NewKey(), key = lk::NewKey();
  lk::X509Ptr root, cert;
  Tsa() {
    root = lk::MakeCert(lk::Ca("test tsa root"), root_key.get(), nullptr, root_key.get());
    cert = lk::X509Ptr(X509_new(), X509_free);
    X509* x = cert.get();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("test tsa"), -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(root.get()));
    ASN1_TIME_set(X509_getm_notBefore(x), 1577836800);  // 2020..2030
    ASN1_TIME_set(X509_getm_notAfter(x), 1893456000);
    X509_set_pubkey(x, key.get());
    lk::AddExt(x, root.get(), NID_subject_key_identifier, "hash");
    lk::AddExt(x, root.get(), NID_authority_key_identifier, "keyid:always");
    lk::AddExt(x, root.get(), NID_key_usage, "critical,digitalSignature");
    lk::AddExt(x, root.get(), NID_ext_key_usage, "critical,timeStamping");
    REQUIRE(X509_sign(x, root_key.get(), EVP_sha256()) > 0);
  }

  // A granted RFC 3161 response (DER) over SHA-256(`data`), genTime `t`.
  std::string Stamp(const std::string& data, int64_t t) const {
    const std::string h = sigstore::Sha256(data);
    TS_MSG_IMPRINT* mi = TS_MSG_IMPRINT_new();
    X509_ALGOR* alg = X509_ALGOR_new();
    REQUIRE(X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256), V_ASN1_NULL, nullptr) == 1);
    REQUIRE(TS_MSG_IMPRINT_set_algo(mi, alg) == 1);
    X509_ALGOR_free(alg);
    REQUIRE(TS_MSG_IMPRINT_set_msg(mi, reinterpret_cast<unsigned char*>(const_cast<char*>(h.data())), 32) == 1);
    TS_REQ* req = TS_REQ_new();
    REQUIRE(TS_REQ_set_version(req, 1) == 1);
    REQUIRE(TS_REQ_set_msg_imprint(req, mi) == 1);
    TS_MSG_IMPRINT_free(mi);
    REQUIRE(TS_REQ_set_cert_req(req, 1) == 1);
    BIO* reqbio = BIO_new(BIO_s_mem());
    REQUIRE(i2d_TS_REQ_bio(reqbio, req) == 1);
    TS_REQ_free(req);
    TS_RESP_CTX* ctx = TS_RESP_CTX_new();
    REQUIRE(TS_RESP_CTX_set_signer_cert(ctx, cert.get()) == 1);
    REQUIRE(TS_RESP_CTX_set_signer_key(ctx, key.get()) == 1);
    ASN1_OBJECT* policy = OBJ_txt2obj("1.3.6.1.4.1.57264.2", 1);
    REQUIRE(TS_RESP_CTX_set_def_policy(ctx, policy) == 1);
    ASN1_OBJECT_free(policy);
    REQUIRE(TS_RESP_CTX_add_md(ctx, EVP_sha256()) == 1);
    REQUIRE(TS_RESP_CTX_set_signer_digest(ctx, EVP_sha256()) == 1);
    long gen = static_cast<long>(t);
    TS_RESP_CTX_set_time_cb(
        ctx,
        [](TS_RESP_CTX*, void* data, long* sec, long* usec) {
          *sec = *static_cast<long*>(data);
          *usec = 0;
          return 1;
        },
        &gen);
    TS_RESP* resp = TS_RESP_create_response(ctx, reqbio);
    TS_RESP_CTX_free(ctx);
    BIO_free(reqbio);
    REQUIRE(resp != nullptr);
    REQUIRE(ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(TS_RESP_get_status_info(resp))) == 0);
    unsigned char* out = nullptr;
    int n = i2d_TS_RESP(resp, &out);
    TS_RESP_free(resp);
    REQUIRE(n > 0);
    std::string der(reinterpret_cast<char*>(out), static_cast<size_t>(n));
    OPENSSL_free(out);
    return der;
  }
};

struct V2Options {
  lk::CertOptions leaf = lk::Leaf();
  bool timestamp = true;
  bool tamper_proof = false;
  bool checkpoint_by_other_key = false;
};

// One world: a Fulcio, a Rekor v2 log key, a TSA, and the trusted root holding the log and the TSA.
struct World {
  lk::Fulcio fulcio;
  lk::Key log = lk::NewKey();
  lk::Key v1_rekor = lk::NewKey();  // the requirement's rekorPublicKeyData (a Rekor v1 SET key)
  Tsa tsa;

  std::string LogId() const { return sigstore::Sha256(lk::SpkiDer(log.get())); }

  // A message-signature v0.3 bundle over kManifest by a fresh leaf of `f`, logged in the v2 log.
  std::string Bundle(const V2Options& o = V2Options(), const lk::Fulcio* f = nullptr) const {
    if (f == nullptr) f = &fulcio;
    lk::Key leaf_key = lk::NewKey();
    lk::X509Ptr leaf = lk::MakeCert(o.leaf, leaf_key.get(), f->inter.get(), f->inter_key.get());
    const std::string leaf_der = lk::CertDerOf(leaf.get());
    const std::string sig = lk::SignSha256(leaf_key.get(), kManifest);
    const std::string digest = sigstore::Sha256(kManifest);
    const std::string body =
        json{{"apiVersion", "0.0.2"},
             {"kind", "hashedrekord"},
             {"spec",
              {{"hashedRekordV002",
                {{"data", {{"algorithm", "SHA2_256"}, {"digest", Base64Encode(digest)}}},
                 {"signature",
                  {{"content", Base64Encode(sig)},
                   {"verifier",
                    {{"keyDetails", "PKIX_ECDSA_P256_SHA_256"},
                     {"x509Certificate", {{"rawBytes", Base64Encode(leaf_der)}}}}}}}}}}}}
            .dump();
    // A two-leaf tree: another entry at 0, ours at 1.
    const std::string leaf0 = sigstore::Sha256(std::string("\x00", 1) + "another entry");
    const std::string leaf1 = sigstore::Sha256(std::string("\x00", 1) + body);
    const std::string root_hash = sigstore::Sha256("\x01" + leaf0 + leaf1);
    const std::string note = std::string(kLogHost) + "\n2\n" + Base64Encode(root_hash) + "\n";
    lk::Key other = lk::NewKey();
    const std::string note_sig = lk::SignSha256(o.checkpoint_by_other_key ? other.get() : log.get(), note);
    const std::string checkpoint =
        note + "\n\xE2\x80\x94 " + kLogHost + " " + Base64Encode(LogId().substr(0, 4) + note_sig) + "\n";
    std::string sibling = leaf0;
    if (o.tamper_proof) sibling[0] = static_cast<char>(sibling[0] ^ 1);
    json vm = {{"certificate", {{"rawBytes", Base64Encode(leaf_der)}}},
               {"tlogEntries", json::array({{{"logIndex", "1"},
                                             {"logId", {{"keyId", Base64Encode(LogId())}}},
                                             {"kindVersion", {{"kind", "hashedrekord"}, {"version", "0.0.2"}}},
                                             {"inclusionProof",
                                              {{"logIndex", "1"},
                                               {"rootHash", Base64Encode(root_hash)},
                                               {"treeSize", "2"},
                                               {"hashes", json::array({Base64Encode(sibling)})},
                                               {"checkpoint", {{"envelope", checkpoint}}}}},
                                             {"canonicalizedBody", Base64Encode(body)}}})}};
    if (o.timestamp) {
      vm["timestampVerificationData"] = {
          {"rfc3161Timestamps", json::array({{{"signedTimestamp", Base64Encode(tsa.Stamp(sig, lk::kSetTime))}}})}};
    }
    return json{{"mediaType", "application/vnd.dev.sigstore.bundle.v0.3+json"},
                {"verificationMaterial", vm},
                {"messageSignature",
                 {{"messageDigest", {{"algorithm", "SHA2_256"}, {"digest", Base64Encode(digest)}}},
                  {"signature", Base64Encode(sig)}}}}
        .dump();
  }

  // The trusted root: the Fulcio, CT and a Rekor v1 log of the legacy util, plus
  // (when asked) the Rekor v2 log and the TSA.
  sigstore::TrustedRoot Root(bool with_log = true, bool with_tsa = true) const {
    lk::CtLog ct;
    json root = json::parse(lk::TrustedRootJson(fulcio, v1_rekor.get(), ct));
    const std::string der = lk::SpkiDer(log.get());
    if (with_log) {
      root["tlogs"].push_back({{"baseUrl", std::string("https://") + kLogHost},
                               {"hashAlgorithm", "SHA2_256"},
                               {"publicKey",
                                {{"rawBytes", Base64Encode(der)},
                                 {"keyDetails", "PKIX_ECDSA_P256_SHA_256"},
                                 {"validFor", {{"start", "2020-01-01T00:00:00Z"}}}}},
                               {"logId", {{"keyId", Base64Encode(LogId())}}}});
    }
    if (with_tsa) {
      root["timestampAuthorities"] = json::array(
          {{{"subject", {{"organization", "test"}, {"commonName", "test tsa"}}},
            {"uri", "https://tsa.test.example"},
            {"certChain",
             {{"certificates", json::array({{{"rawBytes", Base64Encode(lk::CertDerOf(tsa.cert.get()))}},
                                            {{"rawBytes", Base64Encode(lk::CertDerOf(tsa.root.get()))}}})}}},
            {"validFor", {{"start", "2020-01-01T00:00:00Z"}}}}});
    }
    auto r = sigstore::TrustedRoot::Parse(root.dump());
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    return std::move(*r);
  }

  FulcioTrust Trust(const std::string& email = lk::kEmail) const {
    FulcioTrust t;
    t.cas = {fulcio.root, fulcio.inter};  // caData holding the root and the intermediate, as for public-good
    t.oidc_issuer = lk::kIssuer;
    t.subject_email = email;
    return t;
  }
  std::vector<sigstore::PKey> RekorKeys() const {
    auto k = sigstore::ParsePublicKeyPem(lk::PubPem(v1_rekor.get()));
    REQUIRE(k.ok());
    return {*k};
  }
};

FoundSignature AsBundle(const std::string& bundle_json) { return testing::BundleFound(bundle_json); }

const oci::Digest kImage = oci::Digest::Sha256Of(kManifest);

void Refused(const BundleCheck& c, const std::string& why) {
  CHECK(c.kind == BundleCheck::Kind::kRefused);
  CHECK_MESSAGE(c.detail.find(why) != std::string::npos, c.detail);
}

TEST_CASE("containers-policy Rekor v2: a keyless bundle with a TSA timestamp verifies against the root's v2 log") {
  World w;
  const sigstore::TrustedRoot root = w.Root();
  const FoundSignature b = AsBundle(w.Bundle());
  BundleCheck ok = CheckContainersFulcioBundle(b, kImage, w.Trust(), w.RekorKeys(), &root);
  REQUIRE_MESSAGE(ok.kind == BundleCheck::Kind::kVerified, ok.detail);
  CHECK(ok.result.signing_times == std::vector<int64_t>{lk::kSetTime});
  CHECK(ok.result.log_url == std::string("https://") + kLogHost);
  CHECK(ok.result.email_sans == std::vector<std::string>{lk::kEmail});

  // Attack: without a trusted root (what Portcullis did before: no SET, refused).
  Refused(CheckContainersFulcioBundle(b, kImage, w.Trust(), w.RekorKeys(), nullptr), "no trusted root");
  // Attack: the requirement names only another (private) Rekor: the root's v2
  // log is not one it trusts, however valid the entry.
  lk::Fulcio other_world;
  auto private_rekor = sigstore::ParsePublicKeyPem(lk::PubPem(other_world.root_key.get()));
  REQUIRE(private_rekor.ok());
  Refused(CheckContainersFulcioBundle(b, kImage, w.Trust(), {*private_rekor}, &root),
          "requirement's Rekor keys include a Rekor log of the trusted root");
  // Attack: the root does not hold the log; the bundle has no timestamp; the root has no TSA.
  const sigstore::TrustedRoot no_log = w.Root(false, true);
  Refused(CheckContainersFulcioBundle(b, kImage, w.Trust(), w.RekorKeys(), &no_log),
          "its Rekor v2 log is not a Rekor log of the trusted root");
  V2Options o;
  o.timestamp = false;
  Refused(CheckContainersFulcioBundle(AsBundle(w.Bundle(o)), kImage, w.Trust(), w.RekorKeys(), &root),
          "a Rekor v2 entry needs an RFC 3161 timestamp");
  const sigstore::TrustedRoot no_tsa = w.Root(true, false);
  Refused(CheckContainersFulcioBundle(b, kImage, w.Trust(), w.RekorKeys(), &no_tsa), "RFC 3161 timestamp");
  // Attack: a tampered inclusion proof; a checkpoint signed by another key.
  o = V2Options();
  o.tamper_proof = true;
  Refused(CheckContainersFulcioBundle(AsBundle(w.Bundle(o)), kImage, w.Trust(), w.RekorKeys(), &root),
          "inclusion proof: the computed root hash does not match");
  o = V2Options();
  o.checkpoint_by_other_key = true;
  Refused(CheckContainersFulcioBundle(AsBundle(w.Bundle(o)), kImage, w.Trust(), w.RekorKeys(), &root),
          "checkpoint is not signed by the log");
  // Attack: another identity, a foreign CA, a certificate expired at the timestamp, another image.
  Refused(CheckContainersFulcioBundle(b, kImage, w.Trust("mallory@example.com"), w.RekorKeys(), &root),
          "required email \"mallory@example.com\" not found");
  lk::Fulcio foreign;
  Refused(CheckContainersFulcioBundle(AsBundle(w.Bundle(V2Options(), &foreign)), kImage, w.Trust(), w.RekorKeys(),
                                      &root),
          "does not chain");
  o = V2Options();
  o.leaf.not_before = lk::kSetTime - 7200;
  o.leaf.not_after = lk::kSetTime - 3600;
  Refused(CheckContainersFulcioBundle(AsBundle(w.Bundle(o)), kImage, w.Trust(), w.RekorKeys(), &root), "expired");
  Refused(CheckContainersFulcioBundle(b, oci::Digest::Sha256Of("another manifest"), w.Trust(), w.RekorKeys(), &root),
          "not the artifact's");
}

TEST_CASE("containers-policy Rekor v2: the policy engine checks v2 bundles against the built-in root") {
  World w;
  REQUIRE(ContainersRekorV2Root() != nullptr);
  CHECK_FALSE(ContainersRekorV2Root()->tlogs.empty());
  CHECK_FALSE(ContainersRekorV2Root()->timestamp_authorities.empty());
  auto p = Policy::Parse(
      R"({"default":[{"type":"reject"}],"transports":{"docker":{"registry.example.com":[{"type":"sigstoreSigned",)"
      R"("fulcio":{"caData":)" +
          testing::JsonQuote(Base64Encode(w.fulcio.RootPem())) + R"(,"oidcIssuer":)" + testing::JsonQuote(lk::kIssuer) +
          R"(,"subjectEmail":)" + testing::JsonQuote(lk::kEmail) + R"(},"rekorPublicKeyData":)" +
          testing::JsonQuote(Base64Encode(lk::PubPem(w.v1_rekor.get()))) +
          R"(,"signedIdentity":{"type":"matchRepository"}}]}}})",
      "policy.json", "");
  REQUIRE_MESSAGE(p.ok(), p.status().ToString());
  testing::FakeSource src({AsBundle(w.Bundle())});
  auto d = (*p)->Evaluate("registry.example.com/app/server", "v1", kImage, src);
  REQUIRE(d.ok());
  // The test log is not one of the public-good root's: refused for that reason, not for a missing SET.
  CHECK_FALSE(d->allowed);
  CHECK_MESSAGE(d->reason.find("its Rekor v2 log is not a Rekor log of the trusted root") != std::string::npos,
                d->reason);
}

}  // namespace
}  // namespace portcullis::verifier
