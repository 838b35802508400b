// JSON parsing that refuses duplicate keys anywhere, as Go's paranoid decoders
// (and containers/image) do; nlohmann would silently keep the last one.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "oci/status.h"

namespace portcullis::verifier {

// How object keys are compared for duplicates. Go's encoding/json matches
// struct fields case-insensitively, so a document with both "layers" and
// "Layers" means one thing to nlohmann and another to dockerd or containerd:
// where a structural decision is taken on the parse, refuse such keys too.
enum class KeyMatch { kExact, kCaseInsensitive };

// INVALID_ARGUMENT "not valid JSON: <nlohmann's line/column message>" or
// "duplicate key \"<key>\"". Never throws.
StatusOr<nlohmann::json> ParseStrictJson(std::string_view text, KeyMatch match = KeyMatch::kExact);

}  // namespace portcullis::verifier
