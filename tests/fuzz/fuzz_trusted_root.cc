// Sigstore trusted roots (trusted_root.json, verifier/sigstore/trusted_root.h
// TrustedRoot::Parse). Built once verifier/sigstore exists.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "verifier/sigstore/trusted_root.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  (void)portcullis::verifier::sigstore::TrustedRoot::Parse(s);
  return 0;
}
