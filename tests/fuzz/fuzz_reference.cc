// Image references, repository names, tags and digests (oci/reference.h,
// oci/digest.h): the strings every client request and policy names.
// Properties checked besides "no crash": a parsed reference prints as a string
// that parses back to itself, and a parsed digest prints as its input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "oci/digest.h"
#include "oci/reference.h"

using namespace portcullis::oci;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  auto ref = ParseReference(s);
  if (ref.ok()) {
    std::string printed = ref->ToString();
    auto again = ParseReference(printed);
    if (!again.ok() || again->ToString() != printed) abort();
    (void)ref->Name();
    (void)ref->Ref();
  }
  auto d = Digest::Parse(s);
  if (d.ok() && d->ToString() != s) abort();
  (void)ValidateRepository(s);
  (void)ValidateTag(s);
  return 0;
}
