// The pull-through logic, independent of HTTP: manifests (tags revalidated
// after the TTL, stale served while the upstream is down), blobs (cache, else
// a coalesced upstream fetch), and pass-through listings.
#pragma once

#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"
#include "oci/http_client.h"
#include "oci/manifest.h"
#include "oci/status.h"
#include "proxy/blob_fetch.h"
#include "proxy/clock.h"
#include "proxy/counters.h"
#include "proxy/gate.h"
#include "proxy/manifest_store.h"
#include "proxy/metrics.h"
#include "proxy/store.h"
#include "proxy/upstream.h"
#include "proxy/upstreams.h"

namespace portcullis::proxy {

// What a blob request is served from: the committed cache, or a running fetch.
struct BlobSource {
  oci::Digest digest;
  int64_t size = -1;  // -1: unknown (upstream sent no Content-Length)
  uint64_t chunk_bytes = 0;
  std::shared_ptr<BlobFetch> fetch;  // null: serve from the store
  bool cache_hit = false;
  // Held from before the cache was looked at: eviction cannot drop the blob
  // (committed, or committed by `fetch` meanwhile) before its body source
  // pins it in turn.
  std::shared_ptr<StorePin> pin;
};

class Registry {
 public:
  Registry(const config::Config& cfg, std::shared_ptr<Store> store, std::unique_ptr<Router> router);

  // The current router (a snapshot: a reload swaps in a new one).
  std::shared_ptr<const Router> router() const;
  // Resolves a client name through the current router (see Router::Resolve).
  StatusOr<Route> Resolve(const std::string& name, const std::string& ns) const;
  // Replaces the upstream settings; requests in flight keep the old ones.
  void SwapRouter(std::unique_ptr<Router> router);
  Store& store() { return *store_; }
  FetchTable& fetches() { return fetches_; }
  Counters& counters() { return counters_; }
  Metrics& metrics() { return metrics_; }
  Gate& gate() { return gate_; }

  // A manifest by tag or digest (`ref`), as the upstream sent it (ManifestStore::Get).
  StatusOr<ManifestResult> GetManifest(const Route& route, const std::string& ref) {
    return manifests_.Get(route, ref);
  }
  // The same when it is in memory and needs no upstream; never blocks
  // (ManifestStore::Peek). nullopt: call GetManifest on a worker.
  std::optional<ManifestResult> PeekManifest(const Route& route, const std::string& ref) {
    return manifests_.Peek(route, ref);
  }

  // Opens a blob for GET (joins or starts a fetch on a miss).
  StatusOr<BlobSource> OpenBlob(const Route& route, const oci::Digest& d);
  // HEAD: size from the cache, else from an upstream HEAD (nothing is fetched).
  // An upstream HEAD without a numeric Content-Length is UPSTREAM_INVALID: a
  // HEAD answer must not claim a size it does not know.
  StatusOr<int64_t> StatBlob(const Route& route, const oci::Digest& d, bool* cache_hit);

  // Listings (tags/list, referrers) from the route's upstream (upstream::PassThrough).
  StatusOr<oci::HttpResponse> PassThrough(const Route& route, const std::string& target) {
    return upstream::PassThrough(route, target);
  }

 private:
  Status ConfirmBlobInRepo(const Route& route, const oci::Digest& d);
  // The blob from the store when it is complete there (*found), else an empty source.
  StatusOr<BlobSource> OpenCached(const Route& route, const oci::Digest& d, bool* found);

  const config::Config cfg_;
  std::shared_ptr<Store> store_;
  mutable std::mutex router_mu_;
  std::shared_ptr<const Router> router_;
  FetchTable fetches_;
  Counters counters_;
  ManifestStore manifests_;
  Metrics metrics_;
  Gate gate_;
};

using upstream::CheckListing;

}  // namespace portcullis::proxy
