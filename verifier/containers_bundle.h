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
//     RFC 3161 timestamps are ignored (containers-policy names no TSA);
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

#include <string>
#include <vector>

#include "oci/digest.h"
#include "verifier/bundle_check.h"
#include "verifier/discovery.h"
#include "verifier/legacy_keyless.h"
#include "verifier/sigstore/crypto.h"

namespace portcullis::verifier {

// `key_der`: the trusted key's SubjectPublicKeyInfo DER.
BundleCheck CheckContainersKeyBundle(const FoundSignature& sig, const oci::Digest& digest, const std::string& key_der,
                                     const std::vector<sigstore::PKey>& rekor_keys);

BundleCheck CheckContainersFulcioBundle(const FoundSignature& sig, const oci::Digest& digest,
                                        const FulcioTrust& fulcio, const std::vector<sigstore::PKey>& rekor_keys);

}  // namespace portcullis::verifier
