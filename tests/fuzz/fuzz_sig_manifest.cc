// Signature manifests read back from a registry before the signer appends to
// them (signer::ParseSigManifest). A parsed manifest must marshal to bytes
// that parse again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "signer/sig_manifest.h"

using namespace portcullis::signer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  auto m = ParseSigManifest(s);
  if (m.ok()) {
    std::string bytes = MarshalSigManifest(*m);
    if (!ParseSigManifest(bytes).ok()) abort();
  }
  return 0;
}
