// A Sigstore bundle (cosign v3's referrer, discovery.h) under a
// containers-policy.json "sigstoreSigned" requirement. containers/image itself
// does not read bundles yet (its pull request for them is open, held up by the
// missing signed identity); Portcullis applies to a bundle the checks
// containers/image applies to a legacy .sig layer, where they carry over:
//   * keyPath/keyData(s) without Rekor keys: the bundle must be key-based and its
//     signature must verify with the key; any log entry or timestamp it carries
//     is ignored, as containers/image ignores a .sig layer's Rekor bundle then;
//   * with rekorPublicKey*: the bundle must have one Rekor v1 entry whose signed
//     entry timestamp (SET) verifies with one of the Rekor keys and whose body logs
//     this signature with this key (or certificate) and this artifact; the
//     inclusion proof is not required (containers/image checks the SET alone);
//     RFC 3161 timestamps are ignored for it (containers-policy names no TSA);
//   * a Rekor v2 entry (hashedrekord/dsse 0.0.2) has no SET: when the requirement
//     has Rekor keys, it is verified instead against `v2_root` (Portcullis's
//     trusted root: the built-in public-good one under containers-policy.json):
//     the entry's log must be one of its Rekor logs (a Rekor v2 log signs
//     checkpoints with its own key, Ed25519 for public-good, which
//     containers-policy's ECDSA-only rekorPublicKey* cannot name), the inclusion
//     proof must lead to a checkpoint signed by that log, and the signing time
//     comes from an RFC 3161 timestamp by one of the root's TSAs, at which the
//     certificate (fulcio) must chain to the requirement's CAs. Without
//     `v2_root`, a Rekor v2 bundle is refused;
//   * fulcio (Rekor keys required at load): additionally the certificate must
//     chain at the SET's integrated time to one of the CA certificates (each a
//     trust anchor; the bundle's own chain certificates are untrusted
//     intermediates), its OIDC issuer must equal oidcIssuer and one of its
//     email SANs subjectEmail; no SCT is required.
// In every case the signed artifact must be the image digest (a message
// signature over the manifest, or a DSSE in-toto statement with predicateType
// https://sigstore.dev/cosign/sign/v1 naming the digest among its subjects).
// The requirement's signedIdentity is the caller's (policy_containers.cc): a
// bundle carries no signed docker-reference.
//
// Contract: never throws; every outcome is a BundleCheck. Thread-compatible.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "oci/digest.h"
#include "verifier/bundle_check.h"
#include "verifier/discovery.h"
#include "verifier/legacy_keyless.h"
#include "verifier/sigstore/crypto.h"
#include "verifier/sigstore/trusted_root.h"

namespace portcullis::verifier {

// `key_der`: the trusted key's SubjectPublicKeyInfo DER. `v2_root`: see above
// (may be null; must outlive the call).
BundleCheck CheckContainersKeyBundle(const FoundSignature& sig, const oci::Digest& digest, const std::string& key_der,
                                     const std::vector<sigstore::PKey>& rekor_keys,
                                     const sigstore::TrustedRoot* v2_root = nullptr);

BundleCheck CheckContainersFulcioBundle(const FoundSignature& sig, const oci::Digest& digest,
                                        const FulcioTrust& fulcio, const std::vector<sigstore::PKey>& rekor_keys,
                                        const sigstore::TrustedRoot* v2_root = nullptr);

// The trusted root containers-policy.json requirements verify Rekor v2 bundles
// against: the built-in public-good root, parsed once (null if it does not parse).
std::shared_ptr<const sigstore::TrustedRoot> ContainersRekorV2Root();

}  // namespace portcullis::verifier
