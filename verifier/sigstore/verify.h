// Offline verification of a Sigstore bundle against a trusted root, in the order
// of the Sigstore client specification §4:
//   1. signing time: RFC 3161 timestamps (trusted TSA chain) and/or the Rekor v1
//      signed entry timestamp (log key valid at the integrated time); Rekor v2
//      entries (no SET) need a TSA timestamp; no verified time, no verification;
//   2. keyless: the leaf certificate chains to a trusted Fulcio CA at every
//      signing time, carries an SCT from a trusted CT log, and binds the expected
//      identity (SAN + OIDC issuer, exact or regex); key-based bundles (publicKey
//      hint): the caller's key;
//   3. transparency log: exactly one entry from a trusted log, its body consistent
//      with the signature, certificate/key and artifact, its inclusion proof (RFC
//      6962) leading to a checkpoint signed by that log (required for bundles
//      v0.2+ and Rekor v2; verified whenever present);
//   4. the signature over the artifact (message signature) or over the DSSE PAE
//      (in-toto statement whose subjects include the artifact's sha256).
//
// Contract: VerifyBundle returns the verified facts or DENIED with the first
// failing check's reason (UNSUPPORTED "unsupported: ..." for inputs this code
// does not handle — those are never accepted; INVALID_ARGUMENT for an incomplete
// policy). Never throws. Thread-compatible: no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/status.h"
#include "verifier/sigstore/bundle.h"
#include "verifier/sigstore/certificate.h"
#include "verifier/sigstore/trusted_root.h"

namespace portcullis::verifier::sigstore {

// The signed artifact: its bytes, or only its SHA-256 (then Ed25519 and
// non-SHA-256 signatures over the artifact are UNSUPPORTED).
struct Artifact {
  std::optional<std::string> bytes;
  std::string sha256;  // raw 32 bytes

  static Artifact FromBytes(std::string data);
  // "sha256:<64 lowercase hex>"; INVALID_ARGUMENT otherwise.
  static StatusOr<Artifact> FromDigest(std::string_view digest);
};

struct VerifyOptions {
  // Keyless: the expected identity. Key-based: the key (SubjectPublicKeyInfo DER).
  IdentityPolicy identity;
  std::optional<std::string> key_der;
  int64_t now = 0;  // Unix seconds; 0 = the current time (integrated times after it are refused)
  // Key-based only: a bundle with neither a transparency log entry nor an RFC
  // 3161 timestamp is accepted on its signature alone (what `cosign sign --key
  // --tlog-upload=false` writes; the trust a key-based .sig signature gets). A
  // bundle that has log entries or timestamps is verified in full regardless.
  bool allow_untimed_key = false;
  // containers-policy.json "fulcio" semantics (containers/image,
  // signature/fulcio_cert.go), for verifier/containers_bundle.h: when set, a
  // certificate must chain at every signing time to one of these anchors
  // (VerifyChainToAnchors; the bundle's chain certificates after the leaf are
  // untrusted intermediates) instead of the root's Fulcio CAs, no SCT is
  // required, and the identity is not matched here (the caller checks
  // VerifyResult::fulcio_issuer and email_sans).
  const std::vector<Cert>* fulcio_anchors = nullptr;
  // containers/image trusts a Rekor entry by its SET alone: false skips the
  // inclusion proof and checkpoint (never for Rekor v2 entries, which have no SET).
  bool verify_inclusion_proof = true;
};

struct VerifyResult {
  bool keyless = false;
  FulcioIdentity identity;             // keyless only
  std::vector<int64_t> signing_times;  // verified (TSA and/or log) times
  std::string log_url;
  int64_t log_index = 0;
  bool dsse = false;
  std::string predicate_type;  // DSSE in-toto statements
  // With VerifyOptions::fulcio_anchors: FulcioIssuer() and EmailSans() of the leaf.
  std::string fulcio_issuer;
  std::vector<std::string> email_sans;
};

StatusOr<VerifyResult> VerifyBundle(const Bundle& bundle, const TrustedRoot& root, const Artifact& artifact,
                                    const VerifyOptions& options);

}  // namespace portcullis::verifier::sigstore
