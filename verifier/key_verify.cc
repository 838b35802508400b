#include "verifier/key_verify.h"

#include "verifier/bundle_check.h"
#include "verifier/legacy_keyless.h"

namespace portcullis::verifier {

KeyVerification VerifyWithKey(const std::vector<FoundSignature>& found, const keys::PublicKey& key,
                              const sigstore::TrustedRoot& root, const oci::Digest& digest) {
  KeyVerification report;
  auto der = key.Der();
  for (const FoundSignature& sig : found) {
    auto reject = [&](std::string reason) {
      report.rejected.push_back({sig.layer_digest, sig.source, sig.bundle, std::move(reason)});
    };
    if (!sig.bundle) {
      if (!sig.problem.empty()) {
        reject(sig.problem);
        continue;
      }
      auto p = VerifySimpleSigning(sig.payload, sig.signature_b64, key, digest);
      if (!p.ok()) {
        reject(p.status().message());
        continue;
      }
      KeyVerified v;
      v.layer_digest = sig.layer_digest;
      v.source = sig.source;
      v.payload = sig.payload;
      v.parsed = std::move(*p);
      report.verified.push_back(std::move(v));
      continue;
    }
    if (!der.ok()) {
      reject("the key cannot be encoded: " + der.status().message());
      continue;
    }
    BundleCheck c = CheckBundle(sig, root, digest, nullptr, &*der);
    if (c.kind != BundleCheck::Kind::kVerified) {
      reject("Sigstore bundle: " + c.detail);
      continue;
    }
    KeyVerified v;
    v.layer_digest = sig.layer_digest;
    v.source = sig.source;
    v.bundle = true;
    v.bundle_result = std::move(c.result);
    report.verified.push_back(std::move(v));
  }
  return report;
}

KeyVerification VerifyWithIdentity(const std::vector<FoundSignature>& found, const KeylessIdentity& identity,
                                   const sigstore::TrustedRoot& root, const oci::Digest& digest, int64_t now) {
  KeyVerification report;
  for (const FoundSignature& sig : found) {
    auto reject = [&](std::string reason) {
      report.rejected.push_back({sig.layer_digest, sig.source, sig.bundle, std::move(reason)});
    };
    KeyVerified v;
    v.layer_digest = sig.layer_digest;
    v.source = sig.source;
    v.bundle = sig.bundle;
    v.keyless = true;
    if (sig.bundle) {
      BundleCheck c = CheckBundle(sig, root, digest, &identity, nullptr);
      if (c.kind != BundleCheck::Kind::kVerified) {
        reject("Sigstore bundle: " + c.detail);
        continue;
      }
      v.bundle_result = std::move(c.result);
      v.identity = v.bundle_result.identity;
      report.verified.push_back(std::move(v));
      continue;
    }
    if (!sig.problem.empty()) {
      reject(sig.problem);
      continue;
    }
    if (!HasCertificate(sig)) {
      reject("signed with a key (no Fulcio certificate): verify it with --key");
      continue;
    }
    LegacyKeylessCheck c = CheckLegacyKeyless(sig, root, digest, identity, now);
    if (c.kind != BundleCheck::Kind::kVerified) {
      reject("keyless signature: " + c.detail);
      continue;
    }
    v.payload = sig.payload;
    v.parsed = std::move(c.signature.payload);
    v.identity = std::move(c.identity);
    report.verified.push_back(std::move(v));
  }
  return report;
}

}  // namespace portcullis::verifier
