// Legacy cosign signatures (.sig layers, formats.md §2) that carry more than a
// signature: a Fulcio certificate (annotation dev.sigstore.cosign/certificate,
// PEM, with dev.sigstore.cosign/chain, PEM intermediates then root) and the
// offline Rekor bundle (dev.sigstore.cosign/bundle, sigstore/rekor_set.h).
//
// Two ways to trust them:
//   * containers-policy.json "sigstoreSigned" with "fulcio" and Rekor keys, as
//     containers/image does (signature/policy_eval_sigstore.go, fulcio_cert.go):
//     the SET must verify with one of the Rekor keys and log this signature; the
//     certificate must chain, at the SET's integrated time, to one of the CA
//     certificates (caPath/caData; the annotation's chain minus its last
//     certificate as untrusted intermediates); its OIDC issuer must equal
//     oidcIssuer and one of its email SANs subjectEmail. Like containers/image,
//     no SCT is required. A key-based sigstoreSigned with Rekor keys needs the
//     SET to log the signature with that key (VerifyKeyLayerSet).
//   * a Portcullis rule's keyless identity (CheckLegacyKeyless), against a
//     Sigstore trusted root: the SET must verify with the trusted Rekor log its
//     logID names (key valid at the integrated time), the certificate must chain
//     to a trusted Fulcio CA at that time (the annotation's chain is ignored: only
//     the trusted root's intermediates are used) and carry a valid SCT from a
//     trusted CT log, and bind the identity (SAN + issuer, exact or regex, plus
//     the optional Fulcio claims).
// In both, the payload signature is then verified with the certificate's key,
// and the simple-signing payload must name the image digest.
//
// Contract: nothing throws; every outcome is a value. Thread-compatible.
#pragma once

#include <string>
#include <vector>

#include "keys/key.h"
#include "oci/digest.h"
#include "verifier/bundle_check.h"
#include "verifier/discovery.h"
#include "verifier/signature_check.h"
#include "verifier/sigstore/crypto.h"
#include "verifier/sigstore/trusted_root.h"

namespace portcullis::verifier {

// containers-policy.json's "fulcio" object, loaded.
struct FulcioTrust {
  std::vector<sigstore::Cert> cas;  // caPath / caData: every certificate is a trust anchor
  std::string oidc_issuer;
  std::string subject_email;
};

// Whether the layer carries a Fulcio certificate annotation.
bool HasCertificate(const SignatureLayer& layer);

// containers/image's fulcio check of `layer`; the certificate's public key on
// success, DENIED with the reason otherwise (missing annotations included).
StatusOr<keys::PublicKey> VerifyFulcioLayer(const SignatureLayer& layer, const FulcioTrust& fulcio,
                                            const std::vector<sigstore::PKey>& rekor_keys);

// A key-based layer under Rekor keys: the SET annotation must verify with one of
// `rekor_keys` and log this layer's signature and payload with the key whose
// SubjectPublicKeyInfo DER is `key_der`. DENIED with the reason otherwise.
Status VerifyKeyLayerSet(const SignatureLayer& layer, const std::string& key_der,
                         const std::vector<sigstore::PKey>& rekor_keys);

struct LegacyKeylessCheck {
  BundleCheck::Kind kind = BundleCheck::Kind::kRefused;  // kOtherMode: no certificate (a key-based .sig)
  std::string detail;
  SignatureCheck signature;           // kVerified: the payload check (kind kVerified, payload parsed)
  sigstore::FulcioIdentity identity;  // kVerified
  int64_t signing_time = 0;           // kVerified: the SET's integrated time
};

// The Portcullis-policy check of a legacy keyless .sig layer (see above).
// `now` in Unix seconds (0: the current time): an integrated time past it is refused.
LegacyKeylessCheck CheckLegacyKeyless(const FoundSignature& sig, const sigstore::TrustedRoot& root,
                                      const oci::Digest& digest, const KeylessIdentity& identity, int64_t now = 0);

}  // namespace portcullis::verifier
