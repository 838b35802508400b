// JSON text exactly as Go's encoding/json (json.Marshal) writes it, for the
// bytes that cosign peers hash and sign: the simple-signing payload, the `.sig`
// manifest and its config blob. nlohmann's dump() differs from Go in escaping,
// so nothing signed is ever produced with it.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace portcullis::signer {

// Appends `s` as a JSON string literal the way Go 1.22+ json.Marshal does (with
// its default HTML escaping):
//   "  \  → \"  \\            \b \f \n \r \t → their short escapes
//   other bytes < 0x20 → \u00XX (lowercase hex)
//   <  >  & → \u003c \u003e \u0026
//   U+2028, U+2029 → \u2028 \u2029
//   each byte of an invalid UTF-8 sequence → \ufffd (as utf8.DecodeRuneInString,
//   which consumes one byte per error); valid UTF-8 (including U+FFFD) is copied.
//   DEL (0x7f) and all other characters are copied unchanged.
// Go before 1.22 wrote \u0008 and \u000c for \b and \f; cosign releases are built
// with newer Go.
void AppendGoString(std::string& out, std::string_view s);

// AppendGoString into a new string.
std::string GoQuote(std::string_view s);

// A Go map[string]string (or map[string]interface{} of strings) as json.Marshal
// writes it: keys sorted bytewise, compact. An empty map is "{}".
void AppendGoStringMap(std::string& out, const std::map<std::string, std::string>& m);

}  // namespace portcullis::signer
