// Manifests, indexes and referrers answers (an OCI index): oci::ParseManifest
// with each Content-Type an upstream or a client may send. The first input
// byte picks the Content-Type, the rest is the body.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "oci/manifest.h"

using namespace portcullis::oci;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static constexpr std::string_view kTypes[] = {
      "", kOciManifest, kOciIndex, kDockerManifest, kDockerManifestList, "application/json", "text/plain",
      "application/vnd.oci.image.index.v1+json; charset=utf-8"};
  std::string_view content_type = kTypes[data[0] % std::size(kTypes)];
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  auto m = ParseManifest(body, content_type);
  if (m.ok()) {
    (void)m->IsIndex();
    for (const Descriptor& d : m->Blobs()) (void)d.digest.ToString();
  }
  return 0;
}
