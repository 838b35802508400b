// `portcullis verify IMAGE --key PUB`: every signature found for an image
// (discovery.h: the referrers API or the sha256-<hex> fallback index, then the
// legacy sha256-<hex>.sig tag) checked with one public key, as cosign v3's
// `verify --key` does for both formats:
//   * a simple-signing layer (.sig tag or cosign signature referrer) must verify
//     with the key, parse strictly and name the image digest (simple_signing.h);
//   * a Sigstore bundle referrer must be key-based (public-key hint) and verify
//     with the key as bundle_check.h does (its signed artifact must be the image
//     digest; a bundle with a log entry or timestamp is verified against `root`;
//     one with neither, as `portcullis sign --bundle` and `cosign sign --key
//     --tlog-upload=false` write it, on its signature alone). A keyless bundle
//     is rejected: a key does not vouch for a certificate.
//
// `portcullis verify IMAGE --certificate-identity ...` (VerifyWithIdentity):
// every signature found checked against one keyless identity, from `root`:
//   * a Sigstore bundle must be keyless and verify as bundle_check.h does (the
//     signing time, the Fulcio chain at that time, the SCT, the identity, the
//     Rekor entry with its inclusion proof, the signature over the image digest);
//   * a .sig layer must carry a Fulcio certificate and verify as
//     legacy_keyless.h's CheckLegacyKeyless does (SET, chain, SCT, identity,
//     payload signature naming the image digest).
// Key-based signatures are rejected: an identity does not vouch for a key.
//
// Contract: never throws; every outcome is in the report. Thread-compatible.
#pragma once

#include <string>
#include <vector>

#include "keys/key.h"
#include "verifier/bundle_check.h"
#include "oci/digest.h"
#include "verifier/discovery.h"
#include "verifier/simple_signing.h"
#include "verifier/sigstore/trusted_root.h"
#include "verifier/sigstore/verify.h"

namespace portcullis::verifier {

struct KeyVerified {
  oci::Digest layer_digest;
  std::string source;          // where it was found (FoundSignature::source)
  bool bundle = false;
  std::string payload;         // simple-signing: the signed payload bytes ("" for a bundle)
  SimpleSigningPayload parsed; // simple-signing only
  sigstore::VerifyResult bundle_result;  // bundle only
  bool keyless = false;                  // verified with an identity (VerifyWithIdentity)
  sigstore::FulcioIdentity identity;     // keyless: the certificate's identity
};

struct KeyRejected {
  oci::Digest layer_digest;
  std::string source;
  bool bundle = false;
  std::string reason;
};

struct KeyVerification {
  std::vector<KeyVerified> verified;
  std::vector<KeyRejected> rejected;
  bool ok() const { return !verified.empty(); }
};

// Checks each of `found` with `key` against the image `digest` (see above).
KeyVerification VerifyWithKey(const std::vector<FoundSignature>& found, const keys::PublicKey& key,
                              const sigstore::TrustedRoot& root, const oci::Digest& digest);

// Checks each of `found` against `identity` for the image `digest` (see above).
// `now` in Unix seconds (0: the current time), for the legacy SET's time check.
KeyVerification VerifyWithIdentity(const std::vector<FoundSignature>& found, const KeylessIdentity& identity,
                                   const sigstore::TrustedRoot& root, const oci::Digest& digest, int64_t now = 0);

}  // namespace portcullis::verifier
