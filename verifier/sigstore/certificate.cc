#include "verifier/sigstore/certificate.h"

#include <openssl/asn1.h>
#include <openssl/ct.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <memory>
#include <optional>
#include <regex>

namespace portcullis::verifier::sigstore {

namespace {

struct StoreFree {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); }
};
struct StackFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }  // certificates are owned elsewhere
};
struct SctListFree {
  void operator()(STACK_OF(SCT) * s) const { SCT_LIST_free(s); }
};
struct NamesFree {
  void operator()(GENERAL_NAMES* n) const { GENERAL_NAMES_free(n); }
};
struct ObjFree {
  void operator()(ASN1_OBJECT* o) const { ASN1_OBJECT_free(o); }
};

constexpr size_t kMaxIdentityBytes = 4096;

// The raw value of the extension `oid`, or nullopt.
std::optional<std::string> ExtensionValue(X509* cert, const char* oid) {
  std::unique_ptr<ASN1_OBJECT, ObjFree> obj(OBJ_txt2obj(oid, 1));
  if (!obj) return std::nullopt;
  int idx = X509_get_ext_by_OBJ(cert, obj.get(), -1);
  if (idx < 0) return std::nullopt;
  ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(X509_get_ext(cert, idx));
  if (data == nullptr) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                     static_cast<size_t>(ASN1_STRING_length(data)));
}

// A Fulcio v2 extension: a DER UTF8String.
StatusOr<std::string> Utf8Extension(X509* cert, const char* oid) {
  auto raw = ExtensionValue(cert, oid);
  if (!raw) return std::string();
  const unsigned char* p = reinterpret_cast<const unsigned char*>(raw->data());
  ASN1_UTF8STRING* s = d2i_ASN1_UTF8STRING(nullptr, &p, static_cast<long>(raw->size()));
  if (s == nullptr || p != reinterpret_cast<const unsigned char*>(raw->data()) + raw->size()) {
    ASN1_UTF8STRING_free(s);
    ERR_clear_error();
    return Status::Denied(std::string("certificate extension ") + oid + " is not a DER UTF8String");
  }
  std::string out(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), static_cast<size_t>(ASN1_STRING_length(s)));
  ASN1_UTF8STRING_free(s);
  return out;
}

bool SelfSigned(X509* c) { return X509_check_issued(c, c) == X509_V_OK; }

void PutU64(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// The precertificate TBSCertificate: the leaf's TBS without the SCT list extension.
StatusOr<std::string> PrecertTbs(X509* leaf) {
  std::unique_ptr<X509, decltype(&X509_free)> copy(X509_dup(leaf), X509_free);
  if (!copy) return Status::Internal("X509_dup failed");
  int idx = X509_get_ext_by_NID(copy.get(), NID_ct_precert_scts, -1);
  if (idx < 0) return Status::Denied("certificate has no embedded SCT");
  X509_EXTENSION_free(X509_delete_ext(copy.get(), idx));
  unsigned char* out = nullptr;
  int n = i2d_re_X509_tbs(copy.get(), &out);
  if (n <= 0) return Status::Internal("i2d_re_X509_tbs: " + OpenSslError());
  std::string tbs(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  OPENSSL_free(out);
  return tbs;
}

bool RegexFullMatch(const std::string& pattern, const std::string& value, Status& error) {
  try {
    std::regex re(pattern, std::regex::ECMAScript);
    return std::regex_match(value, re);
  } catch (const std::regex_error& e) {
    error = Status::InvalidArgument("bad regular expression \"" + pattern + "\": " + e.what());
    return false;
  }
}

}  // namespace

StatusOr<Cert> LeafFromBundle(const std::vector<std::string>& certificates_der) {
  if (certificates_der.empty()) return Status::Denied("bundle has no certificate");
  std::vector<Cert> certs;
  for (const auto& der : certificates_der) {
    auto c = ParseCertDer(der);
    if (!c.ok()) return Status::Denied("bundle certificate is not a DER certificate");
    certs.push_back(*c);
  }
  for (const auto& c : certs) {
    if (SelfSigned(c.get())) {
      return Status::Denied("bundle certificate chain contains a root (self-signed) certificate");
    }
  }
  if (X509_check_ca(certs[0].get()) != 0) return Status::Denied("bundle leaf certificate is a CA certificate");
  ERR_clear_error();
  return certs[0];
}

StatusOr<Cert> VerifyChainAt(const Cert& leaf, const TrustedRoot& root, int64_t t) {
  if ((X509_get_extended_key_usage(leaf.get()) & XKU_CODE_SIGN) == 0) {
    return Status::Denied("leaf certificate is not for code signing");
  }
  std::string last = "no trusted Fulcio CA is valid at " + FormatTime(t);
  for (const auto& ca : root.certificate_authorities) {
    if (!ca.valid_for.Contains(t)) continue;
    std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
    std::unique_ptr<STACK_OF(X509), StackFree> untrusted(sk_X509_new_null());
    std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
    if (!store || !untrusted || !ctx || X509_STORE_add_cert(store.get(), ca.chain.back().get()) != 1) {
      return Status::Internal("X509 store setup: " + OpenSslError());
    }
    for (size_t i = 0; i + 1 < ca.chain.size(); ++i) sk_X509_push(untrusted.get(), ca.chain[i].get());
    if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), untrusted.get()) != 1) {
      return Status::Internal("X509_STORE_CTX_init: " + OpenSslError());
    }
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
    X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(t));
    if (X509_verify_cert(ctx.get()) == 1) {
      STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
      if (chain == nullptr || sk_X509_num(chain) < 2) return Status::Denied("certificate chain is too short");
      X509* issuer = sk_X509_value(chain, 1);
      X509_up_ref(issuer);
      ERR_clear_error();
      return Cert(issuer, X509_free);
    }
    last = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
    ERR_clear_error();
  }
  return Status::Denied("certificate does not chain to a trusted Fulcio CA at " + FormatTime(t) + ": " + last);
}

Status VerifyEmbeddedSct(const Cert& leaf, const Cert& issuer, const TrustedRoot& root) {
  std::unique_ptr<STACK_OF(SCT), SctListFree> scts(
      static_cast<STACK_OF(SCT)*>(X509_get_ext_d2i(leaf.get(), NID_ct_precert_scts, nullptr, nullptr)));
  ERR_clear_error();
  if (!scts || sk_SCT_num(scts.get()) == 0) return Status::Denied("certificate has no embedded SCT");
  PC_ASSIGN_OR_RETURN(std::string tbs, PrecertTbs(leaf.get()));
  if (tbs.size() >= (1u << 24)) return Status::Denied("certificate is too large for an SCT");
  unsigned char* spki = nullptr;
  int spki_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(issuer.get()), &spki);
  if (spki_len <= 0) return Status::Internal("i2d_X509_PUBKEY: " + OpenSslError());
  std::string issuer_key_hash = Sha256(std::string_view(reinterpret_cast<char*>(spki), static_cast<size_t>(spki_len)));
  OPENSSL_free(spki);

  std::string last = "no SCT from a trusted CT log";
  for (int i = 0; i < sk_SCT_num(scts.get()) && i < 16; ++i) {
    SCT* sct = sk_SCT_value(scts.get(), i);
    if (SCT_get_version(sct) != SCT_VERSION_V1) continue;
    unsigned char* id = nullptr;
    size_t id_len = SCT_get0_log_id(sct, &id);
    const LogInstance* log = root.FindCtlog(std::string_view(reinterpret_cast<char*>(id), id_len));
    if (log == nullptr) continue;
    uint64_t ts_ms = SCT_get_timestamp(sct);
    if (!log->valid_for.Contains(static_cast<int64_t>(ts_ms / 1000))) {
      last = "the CT log " + log->base_url + " key is not valid at the SCT's time";
      continue;
    }
    unsigned char* ext = nullptr;
    size_t ext_len = SCT_get0_extensions(sct, &ext);
    unsigned char* sig = nullptr;
    size_t sig_len = SCT_get0_signature(sct, &sig);
    if (ext_len >= (1u << 16)) continue;
    // RFC 6962 §3.2 digitally-signed struct for a precert entry.
    std::string data;
    data.push_back('\x00');  // sct_version v1
    data.push_back('\x00');  // signature_type certificate_timestamp
    PutU64(data, ts_ms, 8);
    PutU64(data, 1, 2);  // entry_type precert_entry
    data.append(issuer_key_hash);
    PutU64(data, tbs.size(), 3);
    data.append(tbs);
    PutU64(data, ext_len, 2);
    data.append(reinterpret_cast<char*>(ext), ext_len);
    Status st =
        VerifyPrehashed(log->key, "sha256", Sha256(data), std::string_view(reinterpret_cast<char*>(sig), sig_len));
    if (st.ok()) return Status::Ok();
    last = "the SCT signature does not verify with the CT log key of " + log->base_url;
  }
  return Status::Denied("embedded SCT: " + last);
}

StatusOr<FulcioIdentity> ExtractIdentity(const Cert& leaf) {
  FulcioIdentity id;
  std::unique_ptr<GENERAL_NAMES, NamesFree> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf.get(), NID_subject_alt_name, nullptr, nullptr)));
  ERR_clear_error();
  if (names) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()) && i < 16; ++i) {
      GENERAL_NAME* n = sk_GENERAL_NAME_value(names.get(), i);
      if (n->type != GEN_URI && n->type != GEN_EMAIL) continue;
      ASN1_IA5STRING* s = n->type == GEN_URI ? n->d.uniformResourceIdentifier : n->d.rfc822Name;
      id.sans.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                           static_cast<size_t>(ASN1_STRING_length(s)));
    }
  }
  if (id.sans.empty()) return Status::Denied("certificate has no URI or email subject alternative name");
  PC_ASSIGN_OR_RETURN(id.issuer, Utf8Extension(leaf.get(), "1.3.6.1.4.1.57264.1.8"));
  if (id.issuer.empty()) {
    if (auto legacy = ExtensionValue(leaf.get(), "1.3.6.1.4.1.57264.1.1")) id.issuer = *legacy;
  }
  if (id.issuer.empty()) return Status::Denied("certificate has no Fulcio OIDC issuer extension");
  PC_ASSIGN_OR_RETURN(id.build_signer_uri, Utf8Extension(leaf.get(), "1.3.6.1.4.1.57264.1.9"));
  PC_ASSIGN_OR_RETURN(id.runner_environment, Utf8Extension(leaf.get(), "1.3.6.1.4.1.57264.1.11"));
  PC_ASSIGN_OR_RETURN(id.source_repository_uri, Utf8Extension(leaf.get(), "1.3.6.1.4.1.57264.1.12"));
  PC_ASSIGN_OR_RETURN(id.source_repository_ref, Utf8Extension(leaf.get(), "1.3.6.1.4.1.57264.1.14"));
  return id;
}

Status MatchIdentity(const FulcioIdentity& id, const IdentityPolicy& policy) {
  if (policy.identity.empty() == policy.identity_regexp.empty()) {
    return Status::InvalidArgument("give exactly one of a certificate identity and an identity regular expression");
  }
  if (policy.issuer.empty() == policy.issuer_regexp.empty()) {
    return Status::InvalidArgument("give exactly one of an OIDC issuer and an issuer regular expression");
  }
  Status error;
  bool san_ok = false;
  for (const auto& san : id.sans) {
    if (san.size() > kMaxIdentityBytes) continue;
    if (!policy.identity.empty() ? san == policy.identity : RegexFullMatch(policy.identity_regexp, san, error)) {
      san_ok = true;
      break;
    }
    if (!error.ok()) return error;
  }
  if (!san_ok) {
    return Status::Denied(
        "certificate identity \"" + id.sans[0].substr(0, 300) + "\" does not match " +
        (policy.identity.empty() ? "/" + policy.identity_regexp + "/" : "\"" + policy.identity + "\""));
  }
  bool issuer_ok =
      id.issuer.size() <= kMaxIdentityBytes &&
      (!policy.issuer.empty() ? id.issuer == policy.issuer : RegexFullMatch(policy.issuer_regexp, id.issuer, error));
  if (!error.ok()) return error;
  if (!issuer_ok) {
    return Status::Denied("certificate OIDC issuer \"" + id.issuer.substr(0, 300) + "\" does not match " +
                          (policy.issuer.empty() ? "/" + policy.issuer_regexp + "/" : "\"" + policy.issuer + "\""));
  }
  return Status::Ok();
}

Status VerifyChainToAnchors(const Cert& leaf, const std::vector<Cert>& anchors, const std::vector<Cert>& intermediates,
                            int64_t t) {
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  std::unique_ptr<STACK_OF(X509), StackFree> untrusted(sk_X509_new_null());
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !ctx) return Status::Internal("X509 store setup: " + OpenSslError());
  for (const Cert& a : anchors) {
    if (X509_STORE_add_cert(store.get(), a.get()) != 1) ERR_clear_error();  // a duplicate is not an error
  }
  for (const Cert& c : intermediates) sk_X509_push(untrusted.get(), c.get());
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), untrusted.get()) != 1) {
    return Status::Internal("X509_STORE_CTX_init: " + OpenSslError());
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(t));
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
  if (X509_verify_cert(ctx.get()) != 1) {
    std::string why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
    ERR_clear_error();
    return Status::Denied("the certificate does not chain to a trusted Fulcio CA at " + FormatTime(t) + ": " + why);
  }
  STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    X509* c = sk_X509_value(chain, i);
    if ((X509_get_extension_flags(c) & EXFLAG_XKUSAGE) == 0) continue;
    if ((X509_get_extended_key_usage(c) & (XKU_CODE_SIGN | XKU_ANYEKU)) == 0) {
      ERR_clear_error();
      return Status::Denied(std::string(i == 0 ? "the certificate" : "a CA certificate of its chain") +
                            " is not for code signing (extended key usage)");
    }
  }
  ERR_clear_error();
  return Status::Ok();
}

StatusOr<std::string> FulcioIssuer(const Cert& leaf) {
  std::unique_ptr<ASN1_OBJECT, ObjFree> v1(OBJ_txt2obj("1.3.6.1.4.1.57264.1.1", 1));
  std::unique_ptr<ASN1_OBJECT, ObjFree> v2(OBJ_txt2obj("1.3.6.1.4.1.57264.1.8", 1));
  if (!v1 || !v2) return Status::Internal("OBJ_txt2obj failed");
  auto count = [&](ASN1_OBJECT* o) {
    int n = 0;
    for (int i = X509_get_ext_by_OBJ(leaf.get(), o, -1); i >= 0; i = X509_get_ext_by_OBJ(leaf.get(), o, i)) ++n;
    return n;
  };
  const int n1 = count(v1.get()), n2 = count(v2.get());
  if (n1 > 1 || n2 > 1) return Status::Denied("the Fulcio certificate has a duplicate OIDC issuer extension");
  std::optional<std::string> issuer1 = ExtensionValue(leaf.get(), "1.3.6.1.4.1.57264.1.1");
  std::optional<std::string> issuer2;
  if (n2 == 1) {
    PC_ASSIGN_OR_RETURN(std::string s, Utf8Extension(leaf.get(), "1.3.6.1.4.1.57264.1.8"));
    issuer2 = std::move(s);
  }
  if (issuer1 && issuer2 && *issuer1 != *issuer2) {
    return Status::Denied("the Fulcio certificate's OIDC issuer extensions disagree: \"" + issuer1->substr(0, 200) +
                          "\" and \"" + issuer2->substr(0, 200) + "\"");
  }
  if (issuer1) return *issuer1;
  if (issuer2) return *issuer2;
  return Status::Denied("the Fulcio certificate is missing the OIDC issuer extension");
}

std::vector<std::string> EmailSans(const Cert& leaf) {
  std::vector<std::string> out;
  std::unique_ptr<GENERAL_NAMES, NamesFree> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf.get(), NID_subject_alt_name, nullptr, nullptr)));
  ERR_clear_error();
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()) && out.size() < 16; ++i) {
    GENERAL_NAME* n = sk_GENERAL_NAME_value(names.get(), i);
    if (n->type != GEN_EMAIL) continue;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.rfc822Name)),
                     static_cast<size_t>(ASN1_STRING_length(n->d.rfc822Name)));
  }
  return out;
}

}  // namespace portcullis::verifier::sigstore
