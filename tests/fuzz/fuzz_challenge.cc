// What a registry's auth flow and redirects send back (oci/http_client.h):
// WWW-Authenticate challenges, URLs (token realms, Location), and the
// Location repair for pre-signed storage URLs.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "oci/http_client.h"

using namespace portcullis::oci;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  auto ch = ParseChallenge(s);
  if (ch) {
    for (const auto& [k, v] : ch->params) (void)(k.size() + v.size());
  }
  auto url = ParseUrl(s);
  if (url.ok()) (void)url->Origin();
  (void)RepairDecodedLocation(std::string(s));
  (void)QueryEscape(s);
  return 0;
}
