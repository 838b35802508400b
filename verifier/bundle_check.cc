#include "verifier/bundle_check.h"

#include "verifier/sigstore/bundle.h"

namespace portcullis::verifier {

namespace {

BundleCheck Outcome(BundleCheck::Kind kind, std::string detail) {
  BundleCheck c;
  c.kind = kind;
  c.detail = std::move(detail);
  return c;
}

}  // namespace

// The optional claims of `want` against the verified certificate `got`.
std::string ClaimMismatch(const KeylessIdentity& want, const sigstore::FulcioIdentity& got) {
  struct Claim {
    const char* name;
    const std::string& want;
    const std::string& got;
  };
  const Claim claims[] = {
      {"source repository", want.source_repository, got.source_repository_uri},
      {"source repository ref", want.source_repository_ref, got.source_repository_ref},
      {"build signer URI", want.build_signer_uri, got.build_signer_uri},
      {"runner environment", want.runner_environment, got.runner_environment},
  };
  for (const Claim& c : claims) {
    if (!c.want.empty() && c.got != c.want) {
      return std::string("certificate ") + c.name + " \"" + c.got.substr(0, 300) + "\" is not \"" + c.want + "\"";
    }
  }
  return "";
}

std::string KeylessIdentity::Label() const {
  return "identity:" + (subject.empty() ? "/" + subject_regexp + "/" : subject);
}

std::string KeylessIdentity::Describe() const {
  std::string s = "keyless subject " + (subject.empty() ? "/" + subject_regexp + "/" : "\"" + subject + "\"") +
                  " issuer " + (issuer.empty() ? "/" + issuer_regexp + "/" : "\"" + issuer + "\"");
  if (!source_repository.empty()) s += " source_repository \"" + source_repository + "\"";
  if (!source_repository_ref.empty()) s += " source_repository_ref \"" + source_repository_ref + "\"";
  if (!build_signer_uri.empty()) s += " build_signer_uri \"" + build_signer_uri + "\"";
  if (!runner_environment.empty()) s += " runner_environment \"" + runner_environment + "\"";
  return s;
}

BundleCheck CheckBundle(const FoundSignature& sig, const sigstore::TrustedRoot& root, const oci::Digest& digest,
                        const KeylessIdentity* identity, const std::string* key_der) {
  using Kind = BundleCheck::Kind;
  if (!sig.bundle) return Outcome(Kind::kUnreadable, "not a Sigstore bundle");
  if (!sig.problem.empty()) return Outcome(Kind::kUnreadable, sig.problem);
  if ((identity == nullptr) == (key_der == nullptr)) {
    return Outcome(Kind::kRefused, "internal: give exactly one of an identity and a key");
  }
  auto bundle = sigstore::ParseBundle(sig.payload);
  if (!bundle.ok()) return Outcome(Kind::kUnreadable, "not a usable Sigstore bundle: " + bundle.status().message());
  if (identity != nullptr && bundle->has_public_key) {
    return Outcome(Kind::kOtherMode, "signed with a key, not a certificate");
  }
  if (key_der != nullptr && !bundle->has_public_key) {
    return Outcome(Kind::kOtherMode, "signed with a certificate, not a key");
  }
  auto artifact = sigstore::Artifact::FromDigest(digest.ToString());
  if (!artifact.ok()) return Outcome(Kind::kRefused, "the image digest is not sha256: " + digest.ToString());
  sigstore::VerifyOptions opt;
  if (identity != nullptr) {
    opt.identity.identity = identity->subject;
    opt.identity.identity_regexp = identity->subject_regexp;
    opt.identity.issuer = identity->issuer;
    opt.identity.issuer_regexp = identity->issuer_regexp;
  } else {
    opt.key_der = *key_der;
    opt.allow_untimed_key = true;  // as a key-based .sig: the key is the trust, no log needed
  }
  auto verified = sigstore::VerifyBundle(*bundle, root, *artifact, opt);
  if (!verified.ok()) return Outcome(Kind::kRefused, verified.status().message());
  if (verified->dsse && verified->predicate_type != kCosignSignPredicateType) {
    return Outcome(Kind::kRefused, "an attestation (predicateType \"" + verified->predicate_type.substr(0, 200) +
                                       "\"), not a cosign image signature (" + std::string(kCosignSignPredicateType) +
                                       ")");
  }
  if (identity != nullptr) {
    if (std::string m = ClaimMismatch(*identity, verified->identity); !m.empty()) return Outcome(Kind::kRefused, m);
  }
  BundleCheck ok;
  ok.kind = Kind::kVerified;
  ok.result = std::move(*verified);
  return ok;
}

}  // namespace portcullis::verifier
