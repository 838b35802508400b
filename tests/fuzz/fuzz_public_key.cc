// Public key files and inline key data (policy "data", containers-policy
// keyData): PublicKey::FromPem and FromDer. A parsed key must print as PEM
// that parses back to the same DER.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "keys/key.h"

using namespace portcullis::keys;

namespace {
void RoundTrip(const PublicKey& k) {
  auto pem = k.Pem();
  auto der = k.Der();
  if (!pem.ok() || !der.ok()) abort();
  auto again = PublicKey::FromPem(*pem);
  if (!again.ok() || again->type() != k.type() || *again->Der() != *der) abort();
  // A signature check with garbage must be a clean DENIED, never a crash.
  (void)k.Verify("payload", *der);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  if (auto k = PublicKey::FromPem(s); k.ok()) RoundTrip(*k);
  if (auto k = PublicKey::FromDer(s); k.ok()) RoundTrip(*k);
  return 0;
}
