// The offline Rekor bundle of a legacy cosign signature layer: the annotation
// dev.sigstore.cosign/bundle = {"SignedEntryTimestamp": base64, "Payload":
// {"body": base64, "integratedTime": int, "logIndex": int, "logID": hex}}
// (sigstore/cosign specs/SIGNATURE_SPEC.md; containers/image
// signature/internal/rekor_set.go). The SET is Rekor's signature over the
// canonical JSON of Payload; the body must be a hashedrekord 0.0.1 entry logging
// exactly this layer: its signature, its certificate or key, and the SHA-256 of
// its payload.
//
// Contract: nothing throws; ParseRekorSetAnnotation is INVALID_ARGUMENT for a
// malformed annotation (unknown or missing fields, duplicate keys, wrong types);
// the checks are OK or DENIED with the reason. Thread-compatible.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "oci/status.h"
#include "verifier/sigstore/bundle.h"
#include "verifier/sigstore/crypto.h"

namespace portcullis::verifier::sigstore {

inline constexpr size_t kMaxRekorSetBytes = 1 << 20;

// The annotation as a log entry (kind/version read from the body; no inclusion
// proof). Exactly the fields above, nothing else.
StatusOr<TlogEntry> ParseRekorSetAnnotation(std::string_view annotation);

// The SET of `entry` verifies with one of `log_keys` (ECDSA over the SHA-256 of
// the canonical payload JSON, as containers/image checks it).
Status VerifySetWithKeys(const TlogEntry& entry, const std::vector<PKey>& log_keys);

// The body logs this signature: hashedrekord 0.0.1, signature == `signature`
// (raw), verifier == `verifier_der` (certificate DER when `is_cert`, else the
// key's SubjectPublicKeyInfo DER), data.hash == sha256(`payload`).
Status CheckSetBody(const TlogEntry& entry, std::string_view signature, const std::string& verifier_der, bool is_cert,
                    std::string_view payload);

}  // namespace portcullis::verifier::sigstore
