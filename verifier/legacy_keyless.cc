#include "verifier/legacy_keyless.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <ctime>

#include "oci/base64.h"
#include "verifier/sigstore/certificate.h"
#include "verifier/sigstore/rekor_set.h"
#include "verifier/sigstore/tlog.h"

namespace portcullis::verifier {

namespace {

constexpr int64_t kClockSkewSeconds = 60;
constexpr size_t kMaxChainCerts = 8;

const std::string* Annotation(const SignatureLayer& l, std::string_view key) {
  auto it = l.annotations.find(std::string(key));
  return it == l.annotations.end() ? nullptr : &it->second;
}

// The raw signature of the layer (standard base64, CR/LF ignored as Go does).
StatusOr<std::string> RawSignature(const SignatureLayer& l) {
  std::string b64;
  for (char c : l.signature_b64) {
    if (c != '\r' && c != '\n') b64.push_back(c);
  }
  if (b64.empty()) return Status::Denied("the layer has no signature annotation");
  auto raw = oci::Base64Decode(b64);
  if (!raw) return Status::Denied("the signature annotation is not standard base64");
  return *raw;
}

// The certificate annotation: exactly one PEM certificate.
StatusOr<sigstore::Cert> LeafCertificate(const SignatureLayer& l) {
  const std::string* pem = Annotation(l, kCertificateAnnotation);
  if (pem == nullptr) return Status::Denied("missing " + std::string(kCertificateAnnotation) + " annotation");
  auto certs = sigstore::ParseCertsPem(*pem, 2);
  if (!certs.ok()) return Status::Denied("the certificate annotation: " + certs.status().message());
  if (certs->size() != 1) {
    return Status::Denied(certs->empty() ? "no certificate in the certificate annotation"
                                         : "more than one certificate in the certificate annotation");
  }
  return (*certs)[0];
}

StatusOr<sigstore::TlogEntry> SetEntry(const SignatureLayer& l) {
  const std::string* set = Annotation(l, kBundleAnnotation);
  if (set == nullptr) return Status::Denied("missing " + std::string(kBundleAnnotation) + " annotation (Rekor bundle)");
  auto e = sigstore::ParseRekorSetAnnotation(*set);
  if (!e.ok()) return Status::Denied(e.status().message());
  return e;
}

StatusOr<keys::PublicKey> KeyOf(const sigstore::Cert& leaf) {
  EVP_PKEY* pk = X509_get_pubkey(leaf.get());
  if (pk == nullptr) return Status::Denied("the certificate's public key is unusable");
  sigstore::PKey key(pk, EVP_PKEY_free);
  PC_ASSIGN_OR_RETURN(std::string der, sigstore::PublicKeyDer(key));
  auto k = keys::PublicKey::FromDer(der);
  if (!k.ok()) return Status::Denied("the certificate's public key is not supported: " + k.status().message());
  return k;
}

LegacyKeylessCheck Refused(BundleCheck::Kind kind, std::string detail) {
  LegacyKeylessCheck c;
  c.kind = kind;
  c.detail = std::move(detail);
  return c;
}

}  // namespace

bool HasCertificate(const SignatureLayer& layer) { return Annotation(layer, kCertificateAnnotation) != nullptr; }

StatusOr<keys::PublicKey> VerifyFulcioLayer(const SignatureLayer& layer, const FulcioTrust& fulcio,
                                            const std::vector<sigstore::PKey>& rekor_keys) {
  if (layer.bundle) return Status::Denied("a Sigstore bundle, not a cosign .sig signature");
  if (!layer.problem.empty()) return Status::Denied(layer.problem);
  // 1. The SET: signed by a trusted Rekor key, logging this signature, certificate and payload.
  PC_ASSIGN_OR_RETURN(sigstore::TlogEntry entry, SetEntry(layer));
  PC_RETURN_IF_ERROR(sigstore::VerifySetWithKeys(entry, rekor_keys));
  PC_ASSIGN_OR_RETURN(std::string signature, RawSignature(layer));
  PC_ASSIGN_OR_RETURN(sigstore::Cert leaf, LeafCertificate(layer));
  PC_ASSIGN_OR_RETURN(std::string leaf_der, sigstore::CertDer(leaf));
  PC_RETURN_IF_ERROR(sigstore::CheckSetBody(entry, signature, leaf_der, true, layer.payload));
  // 2. The certificate at the integrated time.
  std::vector<sigstore::Cert> intermediates;
  if (const std::string* chain = Annotation(layer, kChainAnnotation)) {
    auto certs = sigstore::ParseCertsPem(*chain, kMaxChainCerts);
    if (!certs.ok()) return Status::Denied("the chain annotation: " + certs.status().message());
    if (certs->size() > 1) intermediates.assign(certs->begin(), certs->end() - 1);  // the last one is the root
  }
  PC_RETURN_IF_ERROR(sigstore::VerifyChainToAnchors(leaf, fulcio.cas, intermediates, *entry.integrated_time));
  // 3. Issuer and email.
  PC_ASSIGN_OR_RETURN(std::string issuer, sigstore::FulcioIssuer(leaf));
  if (issuer != fulcio.oidc_issuer) {
    return Status::Denied("unexpected Fulcio OIDC issuer \"" + issuer.substr(0, 200) + "\" (want \"" +
                          fulcio.oidc_issuer + "\")");
  }
  std::vector<std::string> emails = sigstore::EmailSans(leaf);
  bool found = false;
  for (const std::string& e : emails) found = found || e == fulcio.subject_email;
  if (!found) {
    std::string got;
    for (const std::string& e : emails) got += (got.empty() ? "" : ", ") + e.substr(0, 200);
    return Status::Denied("required email " + fulcio.subject_email + " not found in the certificate (got [" + got +
                          "])");
  }
  return KeyOf(leaf);
}

Status VerifyKeyLayerSet(const SignatureLayer& layer, const std::string& key_der,
                         const std::vector<sigstore::PKey>& rekor_keys) {
  PC_ASSIGN_OR_RETURN(sigstore::TlogEntry entry, SetEntry(layer));
  PC_RETURN_IF_ERROR(sigstore::VerifySetWithKeys(entry, rekor_keys));
  PC_ASSIGN_OR_RETURN(std::string signature, RawSignature(layer));
  return sigstore::CheckSetBody(entry, signature, key_der, false, layer.payload);
}

LegacyKeylessCheck CheckLegacyKeyless(const FoundSignature& sig, const sigstore::TrustedRoot& root,
                                      const oci::Digest& digest, const KeylessIdentity& identity, int64_t now) {
  using Kind = BundleCheck::Kind;
  if (sig.bundle) return Refused(Kind::kOtherMode, "a Sigstore bundle");
  if (!HasCertificate(sig)) return Refused(Kind::kOtherMode, "signed with a key, not a certificate");
  if (!sig.problem.empty()) return Refused(Kind::kUnreadable, sig.problem);
  if (now == 0) now = static_cast<int64_t>(std::time(nullptr));
  auto leaf = LeafCertificate(sig);
  if (!leaf.ok()) return Refused(Kind::kUnreadable, leaf.status().message());
  auto entry = SetEntry(sig);
  if (!entry.ok()) return Refused(Kind::kRefused, entry.status().message());
  // 1. Signing time: the SET of a trusted log, its key valid then.
  const sigstore::LogInstance* log = root.FindTlog(entry->log_id);
  if (log == nullptr) return Refused(Kind::kRefused, "the Rekor bundle is from a log that is not in the trusted root");
  if (Status st = sigstore::VerifySignedEntryTimestamp(*entry, *log); !st.ok()) {
    return Refused(Kind::kRefused, st.message());
  }
  const int64_t t = *entry->integrated_time;
  if (!log->valid_for.Contains(t)) {
    return Refused(Kind::kRefused, "the log key of " + log->base_url + " is not valid at the integrated time " +
                                       sigstore::FormatTime(t));
  }
  if (t > now + kClockSkewSeconds) {
    return Refused(Kind::kRefused, "the log's integrated time " + sigstore::FormatTime(t) + " is in the future");
  }
  // 2. The certificate: chain at t (trusted root only), SCT, identity.
  auto issuer = sigstore::VerifyChainAt(*leaf, root, t);
  if (!issuer.ok()) return Refused(Kind::kRefused, issuer.status().message());
  if (Status st = sigstore::VerifyEmbeddedSct(*leaf, *issuer, root); !st.ok()) return Refused(Kind::kRefused, st.message());
  auto id = sigstore::ExtractIdentity(*leaf);
  if (!id.ok()) return Refused(Kind::kRefused, id.status().message());
  sigstore::IdentityPolicy want{identity.subject, identity.subject_regexp, identity.issuer, identity.issuer_regexp};
  if (Status st = sigstore::MatchIdentity(*id, want); !st.ok()) return Refused(Kind::kRefused, st.message());
  if (std::string m = ClaimMismatch(identity, *id); !m.empty()) return Refused(Kind::kRefused, m);
  // 3. The log entry logs this signature, certificate and payload.
  auto signature = RawSignature(sig);
  if (!signature.ok()) return Refused(Kind::kUnreadable, signature.status().message());
  auto leaf_der = sigstore::CertDer(*leaf);
  if (!leaf_der.ok()) return Refused(Kind::kUnreadable, leaf_der.status().message());
  if (Status st = sigstore::CheckSetBody(*entry, *signature, *leaf_der, true, sig.payload); !st.ok()) {
    return Refused(Kind::kRefused, st.message());
  }
  // 4. The signature and the payload.
  auto key = KeyOf(*leaf);
  if (!key.ok()) return Refused(Kind::kRefused, key.status().message());
  SignatureCheck c = CheckSignature(sig, *key, digest);
  if (c.kind != SignatureCheck::Kind::kVerified) {
    return Refused(Kind::kRefused, c.kind == SignatureCheck::Kind::kOtherKey
                                       ? "the signature does not verify with the certificate's key"
                                       : c.detail);
  }
  LegacyKeylessCheck ok;
  ok.kind = Kind::kVerified;
  ok.signature = std::move(c);
  ok.identity = std::move(*id);
  ok.signing_time = t;
  return ok;
}

}  // namespace portcullis::verifier
