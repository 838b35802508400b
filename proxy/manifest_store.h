// The manifest station of the pull path: a manifest by digest is served from
// the cache when the repository is known to hold it, else fetched, checked
// against its digest and cached; a tag is answered from the cache within
// tag_ttl, revalidated with an upstream HEAD after it, and served stale (up to
// max_stale) while the upstream is down. Nothing is cached whose bytes do not
// hash to the digest asked for or announced.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "oci/digest.h"
#include "oci/status.h"
#include "proxy/clock.h"
#include "proxy/counters.h"
#include "proxy/store.h"
#include "proxy/upstreams.h"

namespace portcullis::proxy {

struct ManifestResult {
  std::string media_type;
  std::string bytes;
  oci::Digest digest;
  bool cache_hit = false;
  bool stale = false;  // served from the cache because the upstream failed
};

class ManifestStore {
 public:
  struct Options {
    int64_t tag_ttl_seconds = 300;
    int64_t max_stale_seconds = 0;
    Clock clock;  // default: NowSeconds
  };
  // `store` and `counters` must outlive this. Thread-safe.
  ManifestStore(Store* store, Counters* counters, Options options);

  // A manifest by tag or digest (`ref`), as the upstream sent it. Blocks on
  // the store and the upstream. MANIFEST_UNKNOWN when the upstream does not
  // have it; UPSTREAM_INVALID when its answer is wrong (nothing cached).
  StatusOr<ManifestResult> Get(const Route& route, const std::string& ref);

  // The same answer when it is in memory now and needs no upstream: a digest
  // the repository is known to hold, or a tag within its TTL, whose records
  // are in RocksDB's memtables or block cache. Never blocks (no disk read, no
  // network): for the event loop. nullopt: call Get on a worker. Counts
  // nothing: the caller counts the hit once it serves the answer.
  std::optional<ManifestResult> Peek(const Route& route, const std::string& ref);

 private:
  StatusOr<ManifestResult> Fetch(const Route& route, const std::string& ref, const std::optional<oci::Digest>& want);
  StatusOr<ManifestResult> FromCache(const Route& route, const oci::Digest& d, bool stale);

  Store* store_;
  Counters* counters_;
  const Options opt_;
};

}  // namespace portcullis::proxy
