// Sigstore bundles (v0.1-v0.3 JSON) as a registry or a user hands them over
// (verifier/sigstore/bundle.h ParseBundle). Built once verifier/sigstore exists.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "verifier/sigstore/bundle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  (void)portcullis::verifier::sigstore::ParseBundle(s);
  return 0;
}
