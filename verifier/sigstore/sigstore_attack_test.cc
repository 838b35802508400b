// Attacks on the Sigstore verifier: each test changes one thing in a bundle,
// trusted root or policy that verifies, and asserts the refusal and its reason.
#include <doctest/doctest.h>
#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "oci/base64.h"
#include "verifier/sigstore/crypto.h"
#include "verifier/sigstore/tlog.h"
#include "verifier/sigstore/verify.h"

namespace portcullis::verifier::sigstore {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kCases = fs::path(PORTCULLIS_SOURCE_DIR) / "tests" / "vectors" / "sigstore" / "cases";
constexpr const char* kIdentity =
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/"
    "extremely-dangerous-oidc-beacon.yml@refs/heads/main";
constexpr const char* kIssuer = "https://token.actions.githubusercontent.com";

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json Load(const fs::path& p) { return json::parse(Slurp(p)); }

VerifyOptions Keyless(std::string identity = kIdentity, std::string issuer = kIssuer) {
  VerifyOptions o;
  o.identity.identity = std::move(identity);
  o.identity.issuer = std::move(issuer);
  return o;
}

// Verifies bundle JSON `b` for cases/a.txt against root JSON `r`.
Status Verify(const json& b, const json& r, const VerifyOptions& opt, bool by_digest = false) {
  auto root = TrustedRoot::Parse(r.dump());
  if (!root.ok()) return root.status();
  auto bundle = ParseBundle(b.dump());
  if (!bundle.ok()) return bundle.status();
  std::string data = Slurp(kCases / "a.txt");
  Artifact a = Artifact::FromBytes(data);
  if (by_digest) a.bytes.reset();
  return VerifyBundle(*bundle, *root, a, opt).status();
}

std::string Flip(const std::string& b64) {
  std::string raw = *oci::Base64Decode(b64);
  raw[raw.size() / 2] ^= 0x01;
  return oci::Base64Encode(raw);
}

json V1Bundle() { return Load(kCases / "happy-path-v0.3" / "bundle.sigstore.json"); }
json V1Root() { return json::parse(PublicGoodTrustedRootJson()); }
json V2Bundle() { return Load(kCases / "rekor2-happy-path" / "bundle.sigstore.json"); }
json V2Root() { return Load(kCases / "rekor2-happy-path" / "trusted_root.json"); }

void CheckRefused(const Status& st, const std::string& reason) {
  INFO(st.ToString());
  CHECK_FALSE(st.ok());
  CHECK(st.message().find(reason) != std::string::npos);
}

TEST_CASE("sigstore: the unmodified bundles verify (baseline for the attacks below)") {
  CHECK(Verify(V1Bundle(), V1Root(), Keyless()).ok());
  CHECK(Verify(V1Bundle(), V1Root(), Keyless(), /*by_digest=*/true).ok());
  CHECK(Verify(V2Bundle(), V2Root(), Keyless()).ok());
  VerifyOptions re;
  re.identity.identity_regexp = "https://github\\.com/sigstore-conformance/.*@refs/heads/main";
  re.identity.issuer_regexp = "https://token\\.actions\\.githubusercontent\\.com";
  CHECK(Verify(V1Bundle(), V1Root(), re).ok());
}

TEST_CASE("sigstore attack: a tampered message signature is refused") {
  json b = V1Bundle();
  b["messageSignature"]["signature"] = Flip(b["messageSignature"]["signature"]);
  CheckRefused(Verify(b, V1Root(), Keyless()), "signature");
  json b2 = V2Bundle();
  b2["messageSignature"]["signature"] = Flip(b2["messageSignature"]["signature"]);
  CheckRefused(Verify(b2, V2Root(), Keyless()), "");
}

TEST_CASE("sigstore attack: another identity, a partial regex match, another issuer are refused") {
  CheckRefused(
      Verify(V1Bundle(), V1Root(), Keyless("https://github.com/evil/repo/.github/workflows/x.yml@refs/heads/main")),
      "does not match");
  VerifyOptions partial;
  partial.identity.identity_regexp = "https://github\\.com/sigstore-conformance";  // prefix only: must match all
  partial.identity.issuer = kIssuer;
  CheckRefused(Verify(V1Bundle(), V1Root(), partial), "does not match");
  CheckRefused(Verify(V1Bundle(), V1Root(), Keyless(kIdentity, "https://accounts.google.com")), "OIDC issuer");
  VerifyOptions bad;
  bad.identity.identity_regexp = "(";
  bad.identity.issuer = kIssuer;
  Status st = Verify(V1Bundle(), V1Root(), bad);
  CHECK(st.Is(Code::kInvalidArgument));
}

TEST_CASE("sigstore attack: a certificate expired at the signing time is refused") {
  auto bundle = ParseBundle(V1Bundle().dump());
  REQUIRE(bundle.ok());
  auto root = TrustedRoot::PublicGood();
  REQUIRE(root.ok());
  auto leaf = LeafFromBundle(bundle->certificates);
  REQUIRE(leaf.ok());
  int64_t t = *bundle->tlog_entries[0].integrated_time;
  CHECK(VerifyChainAt(*leaf, *root, t).ok());
  // Fulcio certificates live 10 minutes: 11 minutes later the leaf has expired.
  CheckRefused(VerifyChainAt(*leaf, *root, t + 11 * 60).status(), "expired");
  CheckRefused(VerifyChainAt(*leaf, *root, t - 3600).status(), "not yet valid");
  // A trusted root whose Fulcio CAs ended before the signing time.
  json r = V1Root();
  for (auto& ca : r["certificateAuthorities"]) ca["validFor"]["end"] = "2024-01-01T00:00:00Z";
  CheckRefused(Verify(V1Bundle(), r, Keyless()), "no trusted Fulcio CA is valid");
}

TEST_CASE("sigstore attack: a log key that is not the log's refuses the signed entry timestamp and checkpoint") {
  json r = V1Root();
  json other = r["ctlogs"][0]["publicKey"];  // some other valid P-256 key
  for (auto& t : r["tlogs"]) t["publicKey"]["rawBytes"] = other["rawBytes"];
  CheckRefused(Verify(V1Bundle(), r, Keyless()), "signed entry timestamp does not verify");
  json r2 = V2Root();
  for (auto& t : r2["tlogs"]) {
    if (t["baseUrl"] == "https://log2025-alpha1.rekor.sigstage.dev") {
      t["publicKey"]["rawBytes"] = "MCowBQYDK2VwAyEAT6NekGRbOAFFIOISI5N1iKn12j1hW204WK7jUhFsZQ8=";
    }
  }
  CheckRefused(Verify(V2Bundle(), r2, Keyless()), "checkpoint is not signed by the log");
}

TEST_CASE("sigstore attack: a tampered inclusion proof or root hash is refused") {
  json b = V1Bundle();
  auto& proof = b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"];
  proof["hashes"][3] = Flip(proof["hashes"][3]);
  CheckRefused(Verify(b, V1Root(), Keyless()), "inclusion proof");
  json b2 = V2Bundle();
  auto& p2 = b2["verificationMaterial"]["tlogEntries"][0]["inclusionProof"];
  p2["logIndex"] = "734";
  CheckRefused(Verify(b2, V2Root(), Keyless()), "inclusion proof");
  json b3 = V2Bundle();
  b3["verificationMaterial"]["tlogEntries"][0].erase("inclusionProof");
  CheckRefused(Verify(b3, V2Root(), Keyless()), "inclusion proof");
}

TEST_CASE("sigstore attack: a checkpoint of another origin is refused") {
  json r = V1Root();
  for (auto& t : r["tlogs"]) t["baseUrl"] = "https://rekor.example.net";
  CheckRefused(Verify(V1Bundle(), r, Keyless()), "checkpoint origin");
  // And directly: a correctly signed note whose origin is not the log's host.
  auto root = TrustedRoot::Parse(V2Root().dump());
  REQUIRE(root.ok());
  const LogInstance* log = nullptr;
  for (const auto& l : root->tlogs) {
    if (l.host == "log2025-alpha1.rekor.sigstage.dev") log = &l;
  }
  REQUIRE(log != nullptr);
  std::string cp = V2Bundle()["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]["envelope"];
  CHECK(VerifyCheckpoint(cp, *log).ok());
  LogInstance renamed = *log;
  renamed.host = "log2025-beta.rekor.sigstage.dev";
  CheckRefused(VerifyCheckpoint(cp, renamed).status(), "checkpoint origin");
}

TEST_CASE("sigstore attack: a Rekor v2 entry without a trusted timestamp is refused") {
  json b = V2Bundle();
  b["verificationMaterial"].erase("timestampVerificationData");
  CheckRefused(Verify(b, V2Root(), Keyless()), "needs an RFC 3161 timestamp");
  json r = V2Root();
  r.erase("timestampAuthorities");
  CheckRefused(Verify(V2Bundle(), r, Keyless()), "RFC 3161 timestamp does not verify");
}

TEST_CASE("sigstore attack: the artifact must be the signed one (message and DSSE subject)") {
  auto root = TrustedRoot::PublicGood();
  REQUIRE(root.ok());
  auto bundle = ParseBundle(V1Bundle().dump());
  REQUIRE(bundle.ok());
  CheckRefused(VerifyBundle(*bundle, *root, Artifact::FromBytes("another file\n"), Keyless()).status(), "artifact");
  auto dsse = ParseBundle(Slurp(kCases / "happy-path-intoto-in-dsse-v3" / "bundle.sigstore.json"));
  REQUIRE(dsse.ok());
  CHECK(VerifyBundle(*dsse, *root, Artifact::FromBytes(Slurp(kCases / "a.txt")), Keyless()).ok());
  CheckRefused(VerifyBundle(*dsse, *root, Artifact::FromBytes("another file\n"), Keyless()).status(),
               "not among the in-toto statement's subjects");
}

TEST_CASE(
    "sigstore attack: key and keyless bundles are not interchangeable; root certificates in the bundle are refused") {
  VerifyOptions with_key;
  auto root = TrustedRoot::PublicGood();
  REQUIRE(root.ok());
  with_key.key_der = *PublicKeyDer(root->tlogs[0].key);
  CheckRefused(Verify(V1Bundle(), V1Root(), with_key), "carries a certificate");
  json mk = Load(kCases / "managed-key-happy-path" / "bundle.sigstore.json");
  CheckRefused(Verify(mk, V1Root(), Keyless()), "signed with a key");
  auto ca_root = root->certificate_authorities.back().chain.back();
  CheckRefused(LeafFromBundle({*CertDer(ca_root)}).status(), "root");
}

TEST_CASE("sigstore: malformed bundles and trusted roots are refused without throwing") {
  CHECK_FALSE(ParseBundle("{\"mediaType\": 1").ok());
  CHECK_FALSE(ParseBundle("{\"mediaType\":\"a\",\"mediaType\":\"b\"}").ok());
  json b = V1Bundle();
  b["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.9";
  CHECK(ParseBundle(b.dump()).status().message().find("unsupported") != std::string::npos);
  json b2 = V1Bundle();
  b2["verificationMaterial"]["tlogEntries"][0]["logIndex"] = json::array();
  CHECK_FALSE(ParseBundle(b2.dump()).ok());
  json r = V2Root();
  r["tlogs"][1]["publicKey"]["validFor"].erase("start");
  CheckRefused(TrustedRoot::Parse(r.dump()).status(), "no start");
  json r2 = V1Root();
  r2["certificateAuthorities"][0]["validFor"].erase("start");
  CheckRefused(TrustedRoot::Parse(r2.dump()).status(), "no start");
}

TEST_CASE("sigstore: RFC 6962 inclusion proofs over a 7-leaf tree") {
  auto leaf = [](int i) { return std::string("\x00", 1) + "leaf" + std::to_string(i); };
  auto node = [](const std::string& l, const std::string& r) { return Sha256("\x01" + l + r); };
  std::vector<std::string> h;
  for (int i = 0; i < 7; ++i) h.push_back(Sha256(leaf(i)));
  // RFC 6962 tree of 7: ((0 1)(2 3))((4 5) 6)
  std::string h01 = node(h[0], h[1]), h23 = node(h[2], h[3]), h45 = node(h[4], h[5]);
  std::string left = node(h01, h23), right = node(h45, h[6]), root = node(left, right);
  auto data = [](int i) { return "leaf" + std::to_string(i); };
  CHECK(VerifyMerkleInclusion(data(0), 0, 7, {h[1], h23, right}, root).ok());
  CHECK(VerifyMerkleInclusion(data(3), 3, 7, {h[2], h01, right}, root).ok());
  CHECK(VerifyMerkleInclusion(data(6), 6, 7, {h45, left}, root).ok());
  CHECK(VerifyMerkleInclusion(data(5), 5, 7, {h[4], h[6], left}, root).ok());
  CHECK_FALSE(VerifyMerkleInclusion(data(6), 5, 7, {h45, left}, root).ok());        // wrong index
  CHECK_FALSE(VerifyMerkleInclusion(data(6), 6, 8, {h45, left}, root).ok());        // wrong size
  CHECK_FALSE(VerifyMerkleInclusion(data(6), 6, 7, {h45}, root).ok());              // too few hashes
  CHECK_FALSE(VerifyMerkleInclusion(data(6), 6, 7, {h45, left, h[0]}, root).ok());  // too many
  CHECK_FALSE(VerifyMerkleInclusion(data(6), 7, 7, {h45, left}, root).ok());        // index out of the tree
  CHECK_FALSE(VerifyMerkleInclusion(data(1), 6, 7, {h45, left}, root).ok());        // another leaf
}

}  // namespace
}  // namespace portcullis::verifier::sigstore

namespace portcullis::verifier::sigstore {
namespace {

TEST_CASE("sigstore attack: a Rekor v1 entry timed only by a TSA needs its log key valid at that time") {
  json b = Load(kCases / "managed-key-happy-path" / "bundle.sigstore.json");
  b["verificationMaterial"]["tlogEntries"][0].erase("inclusionPromise");  // no SET: the TSA time alone
  auto key = ParsePublicKeyPem(Slurp(kCases / "managed-key-happy-path" / "key.pub"));
  REQUIRE(key.ok());
  VerifyOptions opt;
  opt.key_der = *PublicKeyDer(*key);
  CHECK(Verify(b, V1Root(), opt).ok());
  json r = V1Root();
  for (auto& t : r["tlogs"]) t["publicKey"]["validFor"]["start"] = "2030-01-01T00:00:00Z";
  CheckRefused(Verify(b, r, opt), "is not valid at");
  json nots = b;
  nots["verificationMaterial"].erase("timestampVerificationData");
  CheckRefused(Verify(nots, V1Root(), opt), "no verified signing time");
}

}  // namespace
}  // namespace portcullis::verifier::sigstore

namespace portcullis::verifier::sigstore {
namespace {

TEST_CASE("sigstore: RFC 3339 times, closed validity ranges, sha256 digests") {
  CHECK(*ParseRfc3339("2023-07-12T15:56:36Z") == 1689177396);
  CHECK(*ParseRfc3339("2023-07-12T15:56:36.123Z") == 1689177396);
  CHECK(*ParseRfc3339("2023-07-12T17:56:36+02:00") == 1689177396);
  for (const char* bad : {"2023-07-12", "2023-07-12T15:56:36", "2023-13-12T15:56:36Z", "2023-07-12T15:56:36Zjunk",
                          "2023-07-12 15:56:36Z", "2023-07-12T15:56:36.Z"}) {
    INFO(bad);
    CHECK_FALSE(ParseRfc3339(bad).ok());
  }
  TimeRange r{100, 200};
  CHECK(r.Contains(100));
  CHECK(r.Contains(200));  // the end is inclusive
  CHECK_FALSE(r.Contains(99));
  CHECK_FALSE(r.Contains(201));
  CHECK(TimeRange{100, std::nullopt}.Contains(1LL << 40));
  CHECK(Artifact::FromDigest("sha256:" + std::string(64, 'a')).ok());
  CHECK_FALSE(Artifact::FromDigest("sha256:" + std::string(64, 'A')).ok());
  CHECK_FALSE(Artifact::FromDigest("sha256:" + std::string(63, 'a')).ok());
  CHECK_FALSE(Artifact::FromDigest("sha512:" + std::string(128, 'a')).ok());
}

}  // namespace
}  // namespace portcullis::verifier::sigstore

namespace portcullis::verifier::sigstore {
namespace {

TEST_CASE("sigstore attack: a certificate that is not for code signing is refused as a signing leaf") {
  auto root = TrustedRoot::Parse(V2Root().dump());
  REQUIRE(root.ok());
  REQUIRE_FALSE(root->timestamp_authorities.empty());
  // The TSA's own leaf certificate (timeStamping only), at a time inside its validity.
  const Cert& tsa_leaf = root->timestamp_authorities[0].chain.front();
  CheckRefused(VerifyChainAt(tsa_leaf, *root, *ParseRfc3339("2025-06-12T12:02:20Z")).status(), "not for code signing");
}

}  // namespace
}  // namespace portcullis::verifier::sigstore

namespace portcullis::verifier::sigstore {
namespace {

// A throwaway self-signed certificate with the given SAN and raw extension values
// (OID -> DER content of the extnValue OCTET STRING), for ExtractIdentity alone.
Cert MakeIdentityCert(const std::string& san, const std::vector<std::pair<std::string, std::string>>& exts) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 600);
  X509_set_pubkey(x, key);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
  X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
  for (const auto& [oid, value] : exts) {
    ASN1_OBJECT* obj = OBJ_txt2obj(oid.c_str(), 1);
    ASN1_OCTET_STRING* os = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(os, reinterpret_cast<const unsigned char*>(value.data()), static_cast<int>(value.size()));
    X509_EXTENSION* ext = X509_EXTENSION_create_by_OBJ(nullptr, obj, 0, os);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(obj);
  }
  X509_sign(x, key, EVP_sha256());
  EVP_PKEY_free(key);
  return Cert(x, X509_free);
}

std::string Utf8Der(const std::string& s) { return std::string("\x0c", 1) + static_cast<char>(s.size()) + s; }

TEST_CASE("sigstore: identity from the Fulcio extensions (v2 UTF8String, legacy raw issuer, email SAN)") {
  const std::string gh = "https://token.actions.githubusercontent.com";
  auto id = ExtractIdentity(MakeIdentityCert("URI:https://example.com/wf@refs/heads/main",
                                             {{"1.3.6.1.4.1.57264.1.8", Utf8Der(gh)},
                                              {"1.3.6.1.4.1.57264.1.1", "https://legacy.example"},
                                              {"1.3.6.1.4.1.57264.1.9", Utf8Der("https://example.com/signer")},
                                              {"1.3.6.1.4.1.57264.1.11", Utf8Der("github-hosted")},
                                              {"1.3.6.1.4.1.57264.1.12", Utf8Der("https://example.com/repo")},
                                              {"1.3.6.1.4.1.57264.1.14", Utf8Der("refs/tags/v1")}}));
  REQUIRE(id.ok());
  CHECK(id->issuer == gh);  // .8 wins over the legacy .1
  CHECK(id->sans == std::vector<std::string>{"https://example.com/wf@refs/heads/main"});
  CHECK(id->build_signer_uri == "https://example.com/signer");
  CHECK(id->runner_environment == "github-hosted");
  CHECK(id->source_repository_uri == "https://example.com/repo");
  CHECK(id->source_repository_ref == "refs/tags/v1");

  auto legacy = ExtractIdentity(MakeIdentityCert("email:dev@example.com", {{"1.3.6.1.4.1.57264.1.1", gh}}));
  REQUIRE(legacy.ok());
  CHECK(legacy->issuer == gh);
  CHECK(MatchIdentity(*legacy, {"dev@example.com", "", gh, ""}).ok());
  CheckRefused(MatchIdentity(*legacy, {"dev@example.org", "", gh, ""}), "does not match");
  CHECK(MatchIdentity(*legacy, {"", ".*@example\\.com", "", "https://token\\..*"}).ok());
  CheckRefused(MatchIdentity(*legacy, {"", "example\\.com", "", "https://token\\..*"}), "does not match");

  // A .8 value that is not a DER UTF8String, and a certificate with no issuer at all.
  CheckRefused(ExtractIdentity(MakeIdentityCert("URI:https://x", {{"1.3.6.1.4.1.57264.1.8", gh}})).status(),
               "not a DER UTF8String");
  CheckRefused(ExtractIdentity(MakeIdentityCert("URI:https://x", {})).status(), "no Fulcio OIDC issuer");
}

}  // namespace
}  // namespace portcullis::verifier::sigstore

namespace portcullis::verifier::sigstore {
namespace {

TEST_CASE("sigstore attack: an RFC 3161 timestamp over another signature is refused") {
  json b = V2Bundle();
  json other = Load(kCases / "rekor2-dsse-happy-path" / "bundle.sigstore.json");
  b["verificationMaterial"]["timestampVerificationData"] = other["verificationMaterial"]["timestampVerificationData"];
  CheckRefused(Verify(b, V2Root(), Keyless()), "RFC 3161 timestamp does not verify");
}

TEST_CASE("sigstore: chain certificates in the bundle that are not the trusted root's are ignored") {
  json b = Load(kCases / "happy-path-v0.1" / "bundle.sigstore.json");
  auto root = TrustedRoot::Parse(V2Root().dump());
  REQUIRE(root.ok());
  // Some unrelated, not self-signed CA-issued certificate as a would-be intermediate.
  std::string der = *CertDer(root->timestamp_authorities[0].chain.front());
  b["verificationMaterial"]["x509CertificateChain"]["certificates"].push_back({{"rawBytes", oci::Base64Encode(der)}});
  CHECK(Verify(b, V1Root(), Keyless()).ok());
}

}  // namespace
}  // namespace portcullis::verifier::sigstore
