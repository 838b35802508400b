// RFC 3161 timestamps from a bundle's timestampVerificationData, verified
// offline against the trusted root's timestamp authorities.
//
// Contract: OK (with the token's genTime, Unix seconds) only when the response is
// granted, its message imprint is the hash of `signed_data` (the bundle's
// signature bytes), its signature verifies, and the signer's chain leads to the
// root of a trusted TSA whose validFor contains genTime, every certificate valid
// at genTime. Certificates embedded in the token are never trust anchors.
// DENIED otherwise; never throws.
#pragma once

#include <cstdint>
#include <string_view>

#include "oci/status.h"
#include "verifier/sigstore/trusted_root.h"

namespace portcullis::verifier::sigstore {

StatusOr<int64_t> VerifyRfc3161(std::string_view timestamp_der, std::string_view signed_data, const TrustedRoot& root);

}  // namespace portcullis::verifier::sigstore
