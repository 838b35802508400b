// A Sigstore bundle found for an image (discovery.h: a cosign v3 referrer)
// checked as a signature of that image, against a trusted root, with one
// trusted key or one keyless identity.
//
// What binds the bundle to the image: cosign v3 signs an image as a DSSE
// envelope holding an in-toto statement whose predicateType is
// https://sigstore.dev/cosign/sign/v1 and whose subjects include the manifest
// digest; a message-signature bundle must sign the manifest digest itself
// (messageDigest = the image digest). A DSSE statement of another predicate
// type (an SBOM or provenance attestation about the image) is not a signature
// of it and is refused. Everything else is sigstore/verify.h: signing time,
// certificate chain to a trusted Fulcio CA with its SCT, identity, the log
// entry and its inclusion proof, the signature.
//
// Contract: never throws; every outcome is a BundleCheck, never an error.
// Thread-compatible.
#pragma once

#include <string>
#include <string_view>

#include "oci/digest.h"
#include "verifier/discovery.h"
#include "verifier/sigstore/trusted_root.h"
#include "verifier/sigstore/verify.h"

namespace portcullis::verifier {

inline constexpr std::string_view kCosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1";

// A keyless signer a policy trusts: exactly one of subject / subject_regexp
// (matched against the certificate's URI and email SANs) and exactly one of
// issuer / issuer_regexp (the Fulcio OIDC issuer extension). Regular
// expressions are ECMAScript and must match the WHOLE value. The optional
// Fulcio claims, when set, must equal the certificate's.
struct KeylessIdentity {
  std::string subject, subject_regexp;
  std::string issuer, issuer_regexp;
  std::string source_repository;      // OID 1.3.6.1.4.1.57264.1.12 (source repository URI)
  std::string source_repository_ref;  // .1.14
  std::string build_signer_uri;       // .1.9
  std::string runner_environment;     // .1.11

  // "identity:<subject>" or "identity:/<subject_regexp>/" (Decision::keys_matched).
  std::string Label() const;
  // A one-line description for `policy check`.
  std::string Describe() const;
};

// "" when every optional Fulcio claim `want` sets equals the certificate's;
// otherwise the first mismatch, for a refusal reason.
std::string ClaimMismatch(const KeylessIdentity& want, const sigstore::FulcioIdentity& got);

struct BundleCheck {
  enum class Kind {
    kVerified,    // verified for this image with the given key / identity
    kUnreadable,  // not usable by any key or identity: not fetched, not a bundle, malformed
    kOtherMode,   // a keyless bundle checked with a key, or a key-based one with an identity
    kRefused,     // verification failed (detail says why)
  };
  Kind kind = Kind::kRefused;
  std::string detail;
  sigstore::VerifyResult result;  // kVerified
};

// Checks the bundle `sig` (sig.bundle must be true) as a signature of the image
// `digest` (sha256 only) with exactly one of `identity` (keyless) and `key_der`
// (key-based: SubjectPublicKeyInfo DER); the other is null.
BundleCheck CheckBundle(const FoundSignature& sig, const sigstore::TrustedRoot& root, const oci::Digest& digest,
                        const KeylessIdentity* identity, const std::string* key_der);

}  // namespace portcullis::verifier
