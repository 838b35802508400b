#include "verifier/containers_bundle.h"

#include <algorithm>

#include "verifier/sigstore/bundle.h"
#include "verifier/sigstore/verify.h"

namespace portcullis::verifier {

namespace {

using Kind = BundleCheck::Kind;

BundleCheck Outcome(Kind kind, std::string detail) {
  BundleCheck c;
  c.kind = kind;
  c.detail = std::move(detail);
  return c;
}

// A trusted root holding only the Rekor keys, as logs identified by the SHA-256
// of their key (Rekor's log ID).
StatusOr<sigstore::TrustedRoot> RekorRoot(const std::vector<sigstore::PKey>& rekor_keys) {
  sigstore::TrustedRoot root;
  for (size_t i = 0; i < rekor_keys.size(); ++i) {
    PC_ASSIGN_OR_RETURN(std::string der, sigstore::PublicKeyDer(rekor_keys[i]));
    sigstore::LogInstance log;
    log.base_url = "rekorPublicKey[" + std::to_string(i) + "]";
    log.log_id = sigstore::Sha256(der);
    log.key = rekor_keys[i];
    log.valid_for.start = 0;
    root.tlogs.push_back(std::move(log));
  }
  return root;
}

bool IsRekorV2(const sigstore::TlogEntry& e) {
  return (e.kind == "hashedrekord" || e.kind == "dsse") && e.version == "0.0.2";
}

// The part of `v2_root` a Rekor v2 entry is checked against: the entry's log
// (which must be one of the root's Rekor logs) and the root's TSAs. Only for a
// requirement that trusts that Sigstore instance already: one of its Rekor
// keys is a Rekor log key of `v2_root` (public-good's v1 log, say). A
// requirement naming only a private Rekor never accepts an entry of another log.
StatusOr<sigstore::TrustedRoot> RekorV2Root(const sigstore::TlogEntry& entry, const sigstore::TrustedRoot* v2_root,
                                            const std::vector<sigstore::PKey>& rekor_keys) {
  if (v2_root == nullptr) {
    return Status::Denied("a Rekor v2 entry has no SET for the requirement's Rekor keys, and no trusted root is set");
  }
  const sigstore::LogInstance* log = v2_root->FindTlog(entry.log_id);
  if (log == nullptr) return Status::Denied("its Rekor v2 log is not a Rekor log of the trusted root");
  bool same_instance = false;
  for (const auto& k : rekor_keys) {
    auto der = sigstore::PublicKeyDer(k);
    if (!der.ok()) continue;
    for (const auto& l : v2_root->tlogs) {
      auto log_der = sigstore::PublicKeyDer(l.key);
      if (log_der.ok() && *log_der == *der) same_instance = true;
    }
  }
  if (!same_instance) {
    return Status::Denied(
        "a Rekor v2 entry is accepted only when the requirement's Rekor keys include a Rekor log of the trusted root "
        "(its Sigstore instance); none does");
  }
  sigstore::TrustedRoot root;
  root.tlogs.push_back(*log);
  root.timestamp_authorities = v2_root->timestamp_authorities;
  return root;
}

BundleCheck Check(const FoundSignature& sig, const oci::Digest& digest, const std::string* key_der,
                  const FulcioTrust* fulcio, const std::vector<sigstore::PKey>& rekor_keys,
                  const sigstore::TrustedRoot* v2_root) {
  if (!sig.bundle) return Outcome(Kind::kUnreadable, "not a Sigstore bundle");
  if (!sig.problem.empty()) return Outcome(Kind::kUnreadable, sig.problem);
  auto bundle = sigstore::ParseBundle(sig.payload);
  if (!bundle.ok()) return Outcome(Kind::kUnreadable, "not a usable Sigstore bundle: " + bundle.status().message());
  if (fulcio != nullptr && bundle->has_public_key) {
    return Outcome(Kind::kOtherMode, "signed with a key, not a Fulcio certificate");
  }
  if (key_der != nullptr && !bundle->has_public_key) {
    return Outcome(Kind::kOtherMode, "signed with a certificate, not a key");
  }
  auto artifact = sigstore::Artifact::FromDigest(digest.ToString());
  if (!artifact.ok()) return Outcome(Kind::kRefused, "the image digest is not sha256: " + digest.ToString());

  sigstore::Bundle b = std::move(*bundle);
  sigstore::VerifyOptions opt;
  opt.verify_inclusion_proof = false;
  sigstore::TrustedRoot root;
  if (rekor_keys.empty()) {
    // A key requirement without Rekor keys: the signature alone, as for a .sig layer.
    b.tlog_entries.clear();
    b.rfc3161_timestamps.clear();
    opt.allow_untimed_key = true;
  } else if (b.tlog_entries.size() == 1 && IsRekorV2(b.tlog_entries[0])) {
    // No SET: the trusted root's Rekor v2 log (checkpoint and inclusion proof,
    // always verified for v2) and its TSAs (the signing time) stand in for it.
    auto r = RekorV2Root(b.tlog_entries[0], v2_root, rekor_keys);
    if (!r.ok()) return Outcome(Kind::kRefused, r.status().message());
    root = std::move(*r);
  } else {
    b.rfc3161_timestamps.clear();  // containers-policy trusts no TSA: the SET gives the time
    if (b.tlog_entries.empty()) {
      return Outcome(Kind::kRefused, "the requirement's Rekor keys need a Rekor SET, and the bundle has no log entry");
    }
    auto r = RekorRoot(rekor_keys);
    if (!r.ok()) return Outcome(Kind::kRefused, "internal: " + r.status().message());
    root = std::move(*r);
  }
  if (key_der != nullptr) {
    opt.key_der = *key_der;
  } else {
    opt.fulcio_anchors = &fulcio->cas;
  }
  auto verified = sigstore::VerifyBundle(b, root, *artifact, opt);
  if (!verified.ok()) {
    std::string why = verified.status().message();
    if (why.find("not in the trusted root") != std::string::npos) {
      why = "its log entry's SET is not by any of the requirement's Rekor keys";
    }
    return Outcome(Kind::kRefused, why);
  }
  if (verified->dsse && verified->predicate_type != kCosignSignPredicateType) {
    return Outcome(Kind::kRefused, "an attestation (predicateType \"" + verified->predicate_type.substr(0, 200) +
                                       "\"), not a cosign image signature");
  }
  if (fulcio != nullptr) {
    if (verified->fulcio_issuer != fulcio->oidc_issuer) {
      return Outcome(Kind::kRefused, "required OIDC issuer \"" + fulcio->oidc_issuer + "\", got \"" +
                                         verified->fulcio_issuer.substr(0, 300) + "\"");
    }
    const auto& sans = verified->email_sans;
    if (std::find(sans.begin(), sans.end(), fulcio->subject_email) == sans.end()) {
      return Outcome(Kind::kRefused, "required email \"" + fulcio->subject_email + "\" not found (got " +
                                         (sans.empty() ? std::string("no email SAN") : "\"" + sans[0].substr(0, 300) + "\"") +
                                         ")");
    }
  }
  BundleCheck ok;
  ok.kind = Kind::kVerified;
  ok.result = std::move(*verified);
  return ok;
}

}  // namespace

BundleCheck CheckContainersKeyBundle(const FoundSignature& sig, const oci::Digest& digest, const std::string& key_der,
                                     const std::vector<sigstore::PKey>& rekor_keys,
                                     const sigstore::TrustedRoot* v2_root) {
  return Check(sig, digest, &key_der, nullptr, rekor_keys, v2_root);
}

BundleCheck CheckContainersFulcioBundle(const FoundSignature& sig, const oci::Digest& digest,
                                        const FulcioTrust& fulcio, const std::vector<sigstore::PKey>& rekor_keys,
                                        const sigstore::TrustedRoot* v2_root) {
  return Check(sig, digest, nullptr, &fulcio, rekor_keys, v2_root);
}

std::shared_ptr<const sigstore::TrustedRoot> ContainersRekorV2Root() {
  using Root = std::shared_ptr<const sigstore::TrustedRoot>;
  static const Root root = []() -> Root {
    auto r = sigstore::TrustedRoot::PublicGood();
    if (!r.ok()) return nullptr;
    return std::make_shared<const sigstore::TrustedRoot>(std::move(*r));
  }();
  return root;
}

}  // namespace portcullis::verifier
