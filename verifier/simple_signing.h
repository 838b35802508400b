// The cosign "simple signing" payload: strict parsing, as containers/image does
// it (signature/internal/sigstore_payload.go), and verification of one
// payload + signature against a public key and the image digest.
//
// Accepted shape (field order free, no duplicate keys anywhere, nothing else):
//   {"critical":{"identity":{"docker-reference":STRING},
//                "image":{"docker-manifest-digest":DIGEST},
//                "type":"cosign container image signature"},
//    "optional":null | OBJECT}
// In `optional` any keys are allowed; "creator", when present, must be a string
// and "timestamp" an integral number.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "keys/key.h"
#include "oci/digest.h"
#include "oci/status.h"

namespace portcullis::verifier {

inline constexpr std::string_view kCosignSignatureType = "cosign container image signature";

struct SimpleSigningPayload {
  std::string docker_reference;  // critical.identity.docker-reference (not empty)
  oci::Digest manifest_digest;   // critical.image.docker-manifest-digest
  std::optional<std::string> creator;
  std::optional<int64_t> timestamp;
  nlohmann::json optional;  // null or the "optional" object (annotations)
};

// Parses `payload` strictly (see above). Every refusal is DENIED with a message
// that names the offending field ("payload: critical: unknown key \"extra\"").
StatusOr<SimpleSigningPayload> ParseSimpleSigningPayload(std::string_view payload);

// Verifies one signature layer, in containers/image's order: `signature_b64`
// (standard padded base64; CR/LF ignored as Go does) must decode, be a valid
// signature by `key` over the payload bytes, the payload must parse strictly, and
// its docker-manifest-digest must equal `expected_digest`. Returns the parsed
// payload; every refusal is DENIED naming the reason.
StatusOr<SimpleSigningPayload> VerifySimpleSigning(std::string_view payload, std::string_view signature_b64,
                                                   const keys::PublicKey& key, const oci::Digest& expected_digest);

}  // namespace portcullis::verifier
