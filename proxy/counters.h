// The pull path's counters, exported as Prometheus metrics by Registry.
// Plain atomics: any thread may add to them without a lock.
#pragma once

#include <atomic>
#include <cstdint>

namespace portcullis::proxy {

struct Counters {
  std::atomic<uint64_t> manifest_hits{0}, manifest_misses{0}, blob_hits{0}, blob_misses{0};
  std::atomic<uint64_t> coalesced_waiters{0}, upstream_blob_fetches{0}, stale_served{0}, upstream_bytes{0};
};

}  // namespace portcullis::proxy
