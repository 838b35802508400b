// Fulcio signing certificates: path validation to a trusted Fulcio CA at a given
// signing time, the embedded RFC 6962 SCT against the trusted CT logs, and the
// identity the certificate binds (SAN, OIDC issuer, other Fulcio claims).
//
// Contract: OK only when the check holds; DENIED with the reason otherwise; no
// function throws. Certificates carried in the bundle besides the leaf are never
// trusted: the chain is built only from the trusted root's CA chains. A bundle
// chain holding a self-signed (root) certificate, or a CA certificate as leaf, is
// refused. Identity regular expressions are ECMAScript std::regex and must match
// the whole value.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "oci/status.h"
#include "verifier/sigstore/crypto.h"
#include "verifier/sigstore/trusted_root.h"

namespace portcullis::verifier::sigstore {

// What the certificate says about the signer (Fulcio OIDs 1.3.6.1.4.1.57264.1.*).
struct FulcioIdentity {
  std::vector<std::string> sans;      // URI and email SANs, in order
  std::string issuer;                 // .1.8 (DER UTF8String), else legacy .1.1 (raw)
  std::string build_signer_uri;       // .1.9
  std::string runner_environment;     // .1.11
  std::string source_repository_uri;  // .1.12
  std::string source_repository_ref;  // .1.14
};

// Expected identity: exactly one of identity / identity_regexp and one of issuer
// / issuer_regexp must be set.
struct IdentityPolicy {
  std::string identity, identity_regexp;
  std::string issuer, issuer_regexp;
};

// Parses the bundle's certificates (leaf first) and applies the structural
// rules above; returns the leaf.
StatusOr<Cert> LeafFromBundle(const std::vector<std::string>& certificates_der);

// Path validation of `leaf` to the root of a trusted Fulcio CA whose validFor
// contains `t`, with every certificate checked at time `t`; the leaf must be a
// code-signing end-entity certificate. Returns the leaf's issuer (for the SCT).
StatusOr<Cert> VerifyChainAt(const Cert& leaf, const TrustedRoot& root, int64_t t);

// At least one embedded precertificate SCT verifies with a trusted CT log key
// valid at the SCT's time.
Status VerifyEmbeddedSct(const Cert& leaf, const Cert& issuer, const TrustedRoot& root);

StatusOr<FulcioIdentity> ExtractIdentity(const Cert& leaf);

// containers/image's Fulcio check (signature/fulcio_cert.go), for legacy cosign
// .sig layers under a containers-policy.json "fulcio" requirement: path
// validation of `leaf` at time `t` to any of `anchors` (each one a trust anchor,
// self-signed or not, as in a Go x509.CertPool), through `intermediates`
// (untrusted), every certificate of the chain valid at `t`; each certificate of
// the chain that has an extended key usage extension must allow code signing.
// DENIED with OpenSSL's reason otherwise.
Status VerifyChainToAnchors(const Cert& leaf, const std::vector<Cert>& anchors, const std::vector<Cert>& intermediates,
                            int64_t t);

// The OIDC issuer Fulcio recorded: the legacy raw extension .1.1 and/or the
// DER UTF8String .1.8; DENIED when both are present and differ, when either is
// present twice, when .1.8 is not a UTF8String, or when neither is present.
StatusOr<std::string> FulcioIssuer(const Cert& leaf);

// The rfc822Name (email) subject alternative names, in order (at most 16).
std::vector<std::string> EmailSans(const Cert& leaf);

// INVALID_ARGUMENT for an incomplete policy or a bad regular expression; DENIED
// when no SAN matches or the issuer does not.
Status MatchIdentity(const FulcioIdentity& id, const IdentityPolicy& policy);

}  // namespace portcullis::verifier::sigstore
