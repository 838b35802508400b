// JSON parsing that refuses duplicate keys anywhere, as Go's paranoid decoders
// (and containers/image) do; nlohmann would silently keep the last one.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "oci/status.h"

namespace portcullis::verifier {

// INVALID_ARGUMENT "not valid JSON: <nlohmann's line/column message>" or
// "duplicate key \"<key>\"".
StatusOr<nlohmann::json> ParseStrictJson(std::string_view text);

}  // namespace portcullis::verifier
