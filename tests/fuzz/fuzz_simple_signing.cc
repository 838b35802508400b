// cosign "simple signing" payloads (verifier/simple_signing.h): the bytes of a
// signature layer, read from any registry before any key check.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "verifier/simple_signing.h"

using namespace portcullis::verifier;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  auto p = ParseSimpleSigningPayload(s);
  if (p.ok()) (void)p->manifest_digest.ToString();
  return 0;
}
