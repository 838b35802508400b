// Token service answers ({"token": "...", "expires_in": N}), read by the
// registry client in the bearer flow (oci::ParseTokenReply). Built only once
// oci/http_client.h declares ParseTokenReply (see CMakeLists.txt).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "oci/http_client.h"

using namespace portcullis::oci;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  auto r = ParseTokenReply(body, "https://auth.example/token");
  if (r.ok() && r->token.empty()) abort();
  return 0;
}
