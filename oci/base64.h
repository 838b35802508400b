// Standard padded base64 (RFC 4648 §4), as cosign and docker config.json use.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace portcullis::oci {

std::string Base64Encode(std::string_view data);
// nullopt when `s` is not valid padded base64 (whitespace is not allowed).
std::optional<std::string> Base64Decode(std::string_view s);

}  // namespace portcullis::oci
