// Minimal PEM (RFC 7468) encoding and decoding, as Go's encoding/pem writes it:
// "-----BEGIN <type>-----\n", base64 body in 64-character lines, "-----END <type>-----\n".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "oci/status.h"

namespace portcullis::keys {

struct PemBlock {
  std::string type;  // e.g. "PUBLIC KEY"
  std::string body;  // the decoded bytes
};

// Encodes `body` as one PEM block of `type` (64-character lines, trailing newline).
std::string EncodePem(std::string_view type, std::string_view body);

// Decodes the first PEM block in `text` (text before it is ignored, as Go does).
// Errors (INVALID_ARGUMENT) name the problem: no BEGIN line, a missing END line
// (truncated file), an END type that does not match, or a body that is not base64.
// Headers ("Key: value" lines) are not supported. Do not use for unencrypted
// private keys: the decoded body would be an unwiped copy of the key.
StatusOr<PemBlock> DecodePem(std::string_view text);

// The types of all complete-looking BEGIN lines in `text`, in order, without
// decoding any body (safe for unencrypted private keys).
std::vector<std::string> PemTypes(std::string_view text);

}  // namespace portcullis::keys
