// Range headers of blob GETs. The server does not parse Range itself:
// cpp-httplib does (httplib::detail::parse_range_header, in the uninstrumented
// shared library, so this target gets no coverage guidance from inside it and
// works from its seeds by mutation); the proxy then checks the parsed ranges
// against the blob length (proxy/server.cc). This target checks what the proxy
// relies on from the parse: a bounded number of ranges, each either
// "first-last" with 0 <= first <= last, "first-" (last = -1), "-suffix"
// (first = -1; "bytes=-0" is refused by the server), or (-1, -1), which
// httplib makes of "bytes=-" and serves as the whole body (found by this
// target; harmless: the client asked for nothing narrower).
#include <httplib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string header(reinterpret_cast<const char*>(data), size);
  httplib::Ranges ranges;
  if (!httplib::detail::parse_range_header(header, ranges)) return 0;
  if (ranges.size() > header.size()) abort();
  for (const auto& [first, last] : ranges) {
    if (first < -1 || last < -1) abort();
    if (first >= 0 && last >= 0 && first > last) abort();
  }
  return 0;
}
