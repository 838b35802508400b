// Upstream error answers ({"errors":[{"code":..,"message":..}]}) as the
// verifier reads them (oci::HttpError), with the status from the first
// input byte among those registries send.
#include <cstddef>
#include <cstdint>
#include <string>

#include "oci/http_client.h"
#include "oci/registry_read.h"

using namespace portcullis;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static constexpr int kStatus[] = {400, 401, 403, 404, 405, 429, 500, 502, 503, 302};
  oci::HttpResponse r;
  r.status = kStatus[data[0] % std::size(kStatus)];
  r.body.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  (void)oci::HttpError("GET /v2/x/manifests/y", r).ToString();
  return 0;
}
