// Cache upkeep: LRU eviction under a byte bound, purge, garbage collection and
// an integrity check (fsck). A background thread flushes last-access times and
// evicts; the admin API calls the rest.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "oci/status.h"
#include "proxy/blob_fetch.h"
#include "proxy/store.h"

namespace portcullis::proxy {

struct PurgeResult {
  uint64_t blobs = 0, manifests = 0, tags = 0, links = 0;
};
struct GcResult {
  uint64_t blobs = 0, bytes = 0, manifests = 0;
};
struct FsckResult {
  uint64_t checked = 0;
  std::vector<std::string> bad;  // digests dropped because their bytes were wrong or unreadable
};

class Maintenance {
 public:
  // `max_bytes` 0: no bound (no eviction).
  Maintenance(Store* store, FetchTable* fetches, uint64_t max_bytes);
  ~Maintenance();
  Maintenance(const Maintenance&) = delete;
  Maintenance& operator=(const Maintenance&) = delete;

  // Starts the background thread (every `period`: flush access times, evict).
  void Start(std::chrono::milliseconds period = std::chrono::seconds(5));
  void Stop();
  // Wakes the background thread early (after a blob was committed).
  void Nudge();

  // `target` is "upstream/repo" (its links and tags go, then what nothing
  // links any more) or a digest (that blob or manifest and what needs it).
  StatusOr<PurgeResult> Purge(const std::string& target);
  StatusOr<GcResult> Gc();
  StatusOr<FsckResult> Fsck();
  // Evicts least-recently-used complete blobs (never one being fetched) until
  // the cache, counting the bytes fetches in flight reserved (Store::
  // ReservePending), is under 90% of the bound; manifests that need an evicted blob
  // are dropped too, so they are refetched rather than served broken.
  StatusOr<uint64_t> EvictIfNeeded();

  uint64_t max_bytes() const { return max_bytes_; }
  std::atomic<uint64_t> evictions{0}, evicted_bytes{0};

 private:
  void Loop(std::chrono::milliseconds period);

  Store* store_;
  FetchTable* fetches_;
  const uint64_t max_bytes_;
  std::mutex work_mu_;  // one maintenance operation at a time
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool nudged_ = false;
  std::thread thread_;
};

}  // namespace portcullis::proxy
