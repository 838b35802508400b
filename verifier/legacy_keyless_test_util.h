// Test helper (not part of the library): legacy cosign keyless .sig layers made
// here with OpenSSL, trust anchors and all, so each check of legacy_keyless.h can
// be attacked on its own. A test "Fulcio" (root CA -> intermediate CA -> leaf
// with an email SAN, the OIDC issuer extensions 1.3.6.1.4.1.57264.1.1 / .1.8,
// code signing, optionally an embedded SCT from a test CT log), a test "Rekor"
// ECDSA key signing the SET over the canonical JSON of the entry, and the
// simple-signing payload signed by the leaf key. Also the containers-policy
// inputs (CA PEM, Rekor public PEM) and a Sigstore trusted_root.json for them.
// Nothing here uses the code under test to sign.
#pragma once

#include <doctest/doctest.h>
#include <openssl/ct.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "oci/base64.h"
#include "oci/digest.h"
#include "verifier/discovery.h"
#include "verifier/signatures.h"
#include "verifier/sigstore/crypto.h"

namespace portcullis::verifier::testing::legacy {

using nlohmann::json;
using oci::Base64Encode;
using sigstore::Hex;
using sigstore::Sha256;

constexpr int64_t kSetTime = 1700000000;  // 2023-11-14T22:13:20Z: the SET's integrated time
inline const std::string kEmail = "release@example.com";
inline const std::string kIssuer = "https://issuer.example.com";
inline const std::string kRef = "registry.example.com/app/server:v1";

using Key = std::shared_ptr<EVP_PKEY>;
using X509Ptr = std::shared_ptr<X509>;

inline Key NewKey() { return Key(EVP_EC_gen("P-256"), EVP_PKEY_free); }

// ECDSA-SHA256 (DER) over `data`.
inline std::string SignSha256(EVP_PKEY* k, std::string_view data) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  REQUIRE(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, k) == 1);
  size_t n = 0;
  REQUIRE(EVP_DigestSign(ctx.get(), nullptr, &n, reinterpret_cast<const unsigned char*>(data.data()), data.size()) ==
          1);
  std::string out(n, '\0');
  REQUIRE(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &n,
                         reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1);
  out.resize(n);
  return out;
}

inline std::string SpkiDer(EVP_PKEY* k) {
  unsigned char* out = nullptr;
  int n = i2d_PUBKEY(k, &out);
  REQUIRE(n > 0);
  std::string der(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  OPENSSL_free(out);
  return der;
}

inline std::string PubPem(EVP_PKEY* k) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  REQUIRE(PEM_write_bio_PUBKEY(bio.get(), k) == 1);
  char* p = nullptr;
  long n = BIO_get_mem_data(bio.get(), &p);
  return std::string(p, static_cast<size_t>(n));
}

inline std::string CertPem(X509* c) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  REQUIRE(PEM_write_bio_X509(bio.get(), c) == 1);
  char* p = nullptr;
  long n = BIO_get_mem_data(bio.get(), &p);
  return std::string(p, static_cast<size_t>(n));
}

inline std::string CertDerOf(X509* c) {
  unsigned char* out = nullptr;
  int n = i2d_X509(c, &out);
  REQUIRE(n > 0);
  std::string der(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  OPENSSL_free(out);
  return der;
}

inline void AddExt(X509* x, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, x, nullptr, nullptr, 0);
  X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  REQUIRE(e != nullptr);
  REQUIRE(X509_add_ext(x, e, -1) == 1);
  X509_EXTENSION_free(e);
}

inline void AddRawExt(X509* x, const char* oid, const std::string& value) {
  ASN1_OBJECT* obj = OBJ_txt2obj(oid, 1);
  ASN1_OCTET_STRING* os = ASN1_OCTET_STRING_new();
  REQUIRE(ASN1_OCTET_STRING_set(os, reinterpret_cast<const unsigned char*>(value.data()),
                                static_cast<int>(value.size())) == 1);
  X509_EXTENSION* e = X509_EXTENSION_create_by_OBJ(nullptr, obj, 0, os);
  REQUIRE(e != nullptr);
  REQUIRE(X509_add_ext(x, e, -1) == 1);
  X509_EXTENSION_free(e);
  ASN1_OCTET_STRING_free(os);
  ASN1_OBJECT_free(obj);
}

inline std::string Utf8Der(const std::string& s) {
  REQUIRE(s.size() < 128);
  return std::string("\x0c", 1) + static_cast<char>(s.size()) + s;
}

struct CertOptions {
  std::string cn;
  bool ca = false;
  std::vector<std::string> emails;
  std::string issuer_v1;  // raw 1.3.6.1.4.1.57264.1.1 ("" = absent)
  std::string issuer_v2;  // UTF8String 1.3.6.1.4.1.57264.1.8 ("" = absent)
  int64_t not_before = kSetTime - 3600;
  int64_t not_after = kSetTime + 3600;
  bool code_signing = true;  // leaf EKU
};

// A CT log that embeds an SCT in the leaf (RFC 6962 precertificate entry).
struct CtLog {
  Key key = NewKey();
  std::string log_id = Sha256(SpkiDer(key.get()));
};

inline void Put(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Signs `x` with `issuer_key`; with `ct`, first makes an SCT over the
// certificate's TBS (without the SCT list) and embeds it, then signs again.
inline void SignCert(X509* x, X509* issuer, EVP_PKEY* issuer_key, const CtLog* ct, int64_t sct_time) {
  REQUIRE(X509_sign(x, issuer_key, EVP_sha256()) > 0);
  if (ct == nullptr) return;
  unsigned char* tbs = nullptr;
  int tbs_len = i2d_re_X509_tbs(x, &tbs);
  REQUIRE(tbs_len > 0);
  std::string data;
  data.push_back('\0');
  data.push_back('\0');
  const uint64_t ms = static_cast<uint64_t>(sct_time) * 1000;
  Put(data, ms, 8);
  Put(data, 1, 2);
  data += Sha256(SpkiDer(X509_get0_pubkey(issuer)));
  Put(data, static_cast<uint64_t>(tbs_len), 3);
  data.append(reinterpret_cast<char*>(tbs), static_cast<size_t>(tbs_len));
  Put(data, 0, 2);
  OPENSSL_free(tbs);
  std::string sig = SignSha256(ct->key.get(), data);
  SCT* sct = SCT_new();
  REQUIRE(sct != nullptr);
  REQUIRE(SCT_set_version(sct, SCT_VERSION_V1) == 1);
  REQUIRE(SCT_set_log_entry_type(sct, CT_LOG_ENTRY_TYPE_PRECERT) == 1);
  REQUIRE(SCT_set1_log_id(sct, reinterpret_cast<const unsigned char*>(ct->log_id.data()), ct->log_id.size()) == 1);
  SCT_set_timestamp(sct, ms);
  REQUIRE(SCT_set_signature_nid(sct, NID_ecdsa_with_SHA256) == 1);
  REQUIRE(SCT_set1_signature(sct, reinterpret_cast<const unsigned char*>(sig.data()), sig.size()) == 1);
  STACK_OF(SCT)* list = sk_SCT_new_null();
  sk_SCT_push(list, sct);
  REQUIRE(X509_add1_ext_i2d(x, NID_ct_precert_scts, list, 0, 0) == 1);
  SCT_LIST_free(list);
  REQUIRE(X509_sign(x, issuer_key, EVP_sha256()) > 0);
}

// A certificate for `pub`, issued by (`issuer`, `issuer_key`) or self-signed.
inline X509Ptr MakeCert(const CertOptions& o, EVP_PKEY* pub, X509* issuer, EVP_PKEY* issuer_key,
                        const CtLog* ct = nullptr) {
  static long serial = 1;
  X509Ptr x(X509_new(), X509_free);
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial++);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(o.cn.c_str()), -1, -1,
                             0);
  X509* iss = issuer != nullptr ? issuer : x.get();
  X509_set_issuer_name(x.get(), X509_get_subject_name(iss));
  ASN1_TIME_set(X509_getm_notBefore(x.get()), static_cast<time_t>(o.not_before));
  ASN1_TIME_set(X509_getm_notAfter(x.get()), static_cast<time_t>(o.not_after));
  X509_set_pubkey(x.get(), pub);
  AddExt(x.get(), iss, NID_subject_key_identifier, "hash");
  if (issuer != nullptr) AddExt(x.get(), iss, NID_authority_key_identifier, "keyid:always");
  if (o.ca) {
    AddExt(x.get(), iss, NID_basic_constraints, "critical,CA:TRUE");
    AddExt(x.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExt(x.get(), iss, NID_key_usage, "critical,digitalSignature");
    AddExt(x.get(), iss, NID_ext_key_usage, o.code_signing ? "codeSigning" : "serverAuth");
    std::string san;
    for (const std::string& e : o.emails) san += (san.empty() ? "email:" : ",email:") + e;
    if (!san.empty()) AddExt(x.get(), iss, NID_subject_alt_name, san.c_str());
    if (!o.issuer_v1.empty()) AddRawExt(x.get(), "1.3.6.1.4.1.57264.1.1", o.issuer_v1);
    if (!o.issuer_v2.empty()) AddRawExt(x.get(), "1.3.6.1.4.1.57264.1.8", Utf8Der(o.issuer_v2));
  }
  SignCert(x.get(), iss, issuer_key, ct, o.not_before + 1);
  return x;
}

// A CA certificate's options, valid 2020..2030.
inline CertOptions Ca(const std::string& cn) {
  CertOptions o;
  o.cn = cn;
  o.ca = true;
  o.not_before = 1577836800;
  o.not_after = 1893456000;
  return o;
}

inline CertOptions Leaf() {
  CertOptions o;
  o.emails = {kEmail};
  o.issuer_v2 = kIssuer;
  return o;
}

// A test Fulcio: root -> intermediate, both valid 2020..2030.
struct Fulcio {
  Key root_key = NewKey(), inter_key = NewKey();
  X509Ptr root, inter;
  Fulcio() {
    root = MakeCert(Ca("test fulcio root"), root_key.get(), nullptr, root_key.get());
    inter = MakeCert(Ca("test fulcio intermediate"), inter_key.get(), root.get(), root_key.get());
  }
  std::string RootPem() const { return CertPem(root.get()); }
  std::string ChainPem() const { return CertPem(inter.get()) + CertPem(root.get()); }
};

struct LayerOptions {
  CertOptions leaf = Leaf();
  oci::Digest digest;             // what the payload names (required)
  std::string ref = kRef;         // the payload's docker-reference
  int64_t integrated_time = kSetTime;
  bool set_by_other_key = false;  // the SET is signed by a key that is not the Rekor key
  bool set_for_other_payload = false;  // the logged hash is another payload's
  bool set_for_other_signature = false;  // the logged signature is another one
  bool log_the_key = false;  // log `logged_key_pem` as the verifier (key-based .sig)
  std::string logged_key_pem;
  bool with_chain = true;    // dev.sigstore.cosign/chain annotation
  bool with_bundle = true;   // dev.sigstore.cosign/bundle annotation
  bool with_certificate = true;
  bool sct = true;           // embed an SCT from `ct`
};

struct Made {
  FoundSignature sig;
  Key leaf_key;
  std::string leaf_pem;
};

// The canonical SET payload and the bundle annotation over `body`.
inline std::string SetAnnotation(const std::string& body, int64_t t, const std::string& log_id, EVP_PKEY* signer) {
  std::string payload = "{\"body\":\"" + Base64Encode(body) + "\",\"integratedTime\":" + std::to_string(t) +
                        ",\"logID\":\"" + Hex(log_id) + "\",\"logIndex\":42}";
  std::string set = SignSha256(signer, payload);
  return json{{"SignedEntryTimestamp", Base64Encode(set)}, {"Payload", json::parse(payload)}}.dump();
}

// A legacy .sig layer signed with a fresh leaf from `fulcio` (or with
// `signer_key` as a plain key when with_certificate is false), logged by `rekor`.
inline Made MakeLayer(const LayerOptions& o, const Fulcio& fulcio, EVP_PKEY* rekor, const CtLog& ct,
                      EVP_PKEY* signer_key = nullptr) {
  Made m;
  m.leaf_key = NewKey();
  EVP_PKEY* signer = signer_key != nullptr ? signer_key : m.leaf_key.get();
  X509Ptr leaf = MakeCert(o.leaf, m.leaf_key.get(), fulcio.inter.get(), fulcio.inter_key.get(), o.sct ? &ct : nullptr);
  m.leaf_pem = CertPem(leaf.get());
  const std::string payload = R"({"critical":{"identity":{"docker-reference":")" + o.ref +
                              R"("},"image":{"docker-manifest-digest":")" + o.digest.ToString() +
                              R"("},"type":"cosign container image signature"},"optional":null})";
  const std::string sig = SignSha256(signer, payload);
  const std::string logged_sig = o.set_for_other_signature ? SignSha256(signer, payload + " ") : sig;
  const std::string logged_payload = o.set_for_other_payload ? payload + " " : payload;
  const std::string verifier = o.log_the_key ? o.logged_key_pem : m.leaf_pem;
  json body = {{"apiVersion", "0.0.1"},
               {"kind", "hashedrekord"},
               {"spec",
                {{"data", {{"hash", {{"algorithm", "sha256"}, {"value", Hex(Sha256(logged_payload))}}}}},
                 {"signature",
                  {{"content", Base64Encode(logged_sig)}, {"publicKey", {{"content", Base64Encode(verifier)}}}}}}}};
  Key other = NewKey();
  EVP_PKEY* set_signer = o.set_by_other_key ? other.get() : rekor;
  const std::string log_id = Sha256(SpkiDer(rekor));
  FoundSignature& f = m.sig;
  f.payload = payload;
  f.signature_b64 = Base64Encode(sig);
  f.layer_digest = oci::Digest::Sha256Of(payload);
  f.size = static_cast<int64_t>(payload.size());
  f.source = "tag sha256-test.sig";
  f.annotations[std::string(kSignatureAnnotation)] = f.signature_b64;
  if (o.with_certificate) f.annotations[std::string(kCertificateAnnotation)] = m.leaf_pem;
  if (o.with_chain) f.annotations[std::string(kChainAnnotation)] = fulcio.ChainPem();
  if (o.with_bundle) {
    f.annotations[std::string(kBundleAnnotation)] = SetAnnotation(body.dump(), o.integrated_time, log_id, set_signer);
  }
  return m;
}

// A Sigstore trusted_root.json for `fulcio`, the Rekor key and the CT log.
inline std::string TrustedRootJson(const Fulcio& fulcio, EVP_PKEY* rekor, const CtLog& ct) {
  auto log = [](EVP_PKEY* k, const std::string& url) {
    std::string der = SpkiDer(k);
    return json{{"baseUrl", url},
                {"hashAlgorithm", "SHA2_256"},
                {"publicKey",
                 {{"rawBytes", Base64Encode(der)},
                  {"keyDetails", "PKIX_ECDSA_P256_SHA_256"},
                  {"validFor", {{"start", "2020-01-01T00:00:00Z"}}}}},
                {"logId", {{"keyId", Base64Encode(Sha256(der))}}}};
  };
  json root = {
      {"mediaType", "application/vnd.dev.sigstore.trustedroot+json;version=0.1"},
      {"tlogs", json::array({log(rekor, "https://rekor.test.example")})},
      {"ctlogs", json::array({log(ct.key.get(), "https://ct.test.example")})},
      {"certificateAuthorities",
       json::array({{{"uri", "https://fulcio.test.example"},
                     {"certChain",
                      {{"certificates", json::array({{{"rawBytes", Base64Encode(CertDerOf(fulcio.inter.get()))}},
                                                     {{"rawBytes", Base64Encode(CertDerOf(fulcio.root.get()))}}})}}},
                     {"validFor", {{"start", "2020-01-01T00:00:00Z"}}}}})}};
  return root.dump();
}

}  // namespace portcullis::verifier::testing::legacy
