// Response bodies of blob GETs (BodySource, proxy/http_message.h): a cached
// blob read chunk by chunk from the store, or a fetch in progress read as its
// bytes arrive. Both serve the byte range [first, end) of the blob; and the
// Range header that picks it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "oci/digest.h"
#include "proxy/blob_fetch.h"
#include "proxy/http_message.h"
#include "proxy/store.h"

namespace portcullis::proxy {

// The bytes [first, end) of a committed blob. Pins the blob in `store` (so
// eviction skips it) until destroyed. A missing chunk fails the body (the
// connection is cut) and is logged.
std::unique_ptr<BodySource> StoreBody(Store* store, const oci::Digest& d, uint64_t chunk_bytes, uint64_t first,
                                      uint64_t end);

// The bytes [first, end) of a blob being fetched (`end` UINT64_MAX: to the
// end, size unknown). The response's last byte is withheld until the whole
// blob arrived and matched its digest; a failed fetch, or no new byte for
// `stall`, fails the body. Pins the blob in `store` until destroyed.
std::unique_ptr<BodySource> FetchBody(Store* store, std::shared_ptr<BlobFetch> fetch, uint64_t first, uint64_t end,
                                      std::chrono::seconds stall);

// A Range header against a blob of `size` bytes (RFC 9110 14.2). One range
// is served as 206 [first, end) (a last byte past the end is clamped; a suffix
// range takes the last N bytes); none, several or an unparsable header mean
// the whole blob (200); a range starting at or past the end is unsatisfiable.
struct RangePick {
  enum Kind { kWhole, kPartial, kUnsatisfiable } kind = kWhole;
  uint64_t first = 0, end = 0;
};
RangePick PickRange(const std::string& range_header, uint64_t size);

}  // namespace portcullis::proxy
