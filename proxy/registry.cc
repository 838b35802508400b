#include "proxy/registry.h"

#include <charconv>
#include <chrono>

#include "oci/errors.h"
#include "oci/json_fields.h"
#include "oci/reference.h"
#include "proxy/log.h"

namespace portcullis::proxy {

namespace {
Gate::Options GateOptions(const config::Config& cfg) {
  Gate::Options o;
  o.verdict_ttl_seconds = cfg.verdict_ttl_seconds;
  o.blob_gate_referenced = cfg.blob_gate == "referenced";
  return o;
}
FetchLimits FetchLimitsOf(const config::Config& cfg) {
  FetchLimits l;
  l.deadline = std::chrono::seconds(cfg.fetch_deadline_seconds);
  l.max_blob_bytes = static_cast<uint64_t>(config::EffectiveMaxBlobBytes(cfg));
  return l;
}
}  // namespace

Registry::Registry(const config::Config& cfg, std::shared_ptr<Store> store, std::unique_ptr<Router> router)
    : cfg_(cfg),
      store_(store),
      router_(std::move(router)),
      fetches_(store, static_cast<uint64_t>(cfg.chunk_bytes), static_cast<size_t>(cfg.max_inflight_fetches),
               FetchWindow{}, FetchLimitsOf(cfg)),
      manifests_(store.get(), &counters_, {cfg.tag_ttl_seconds, cfg.max_stale_seconds, NowSeconds}),
      gate_(store.get(), &metrics_, GateOptions(cfg)) {
  auto counter = [this](const char* name, const char* help, Metrics::Labels labels, std::atomic<uint64_t>* c) {
    metrics_.Callback(name, help, "counter", labels, [c] { return static_cast<double>(c->load()); });
  };
  const char* kCache = "portcullis_cache_requests_total";
  const char* kCacheHelp = "Requests answered from the cache (hit) or the upstream (miss), by kind.";
  counter(kCache, kCacheHelp, {{"kind", "manifest"}, {"result", "hit"}}, &counters_.manifest_hits);
  counter(kCache, kCacheHelp, {{"kind", "manifest"}, {"result", "miss"}}, &counters_.manifest_misses);
  counter(kCache, kCacheHelp, {{"kind", "blob"}, {"result", "hit"}}, &counters_.blob_hits);
  counter(kCache, kCacheHelp, {{"kind", "blob"}, {"result", "miss"}}, &counters_.blob_misses);
  counter("portcullis_coalesced_waiters_total", "Blob requests that joined a fetch already running.", {},
          &counters_.coalesced_waiters);
  counter("portcullis_upstream_blob_fetches_total", "Blob fetches started upstream.", {},
          &counters_.upstream_blob_fetches);
  counter("portcullis_stale_served_total", "Tags served from the cache because the upstream failed.", {},
          &counters_.stale_served);
  counter("portcullis_upstream_bytes_total", "Blob bytes received from upstreams.", {}, &counters_.upstream_bytes);
  metrics_.Callback("portcullis_inflight_fetches", "Upstream blob fetches running now.", "gauge", {},
                    [this] { return static_cast<double>(fetches_.inflight()); });
  metrics_.Callback("portcullis_cache_bytes", "Bytes of complete blobs in the cache.", "gauge", {},
                    [this] { return static_cast<double>(store_->Stats().blob_bytes); });
  metrics_.Callback("portcullis_pending_blob_bytes",
                    "Bytes fetches in flight may still write (counted against --cache-max-bytes).", "gauge", {},
                    [this] { return static_cast<double>(store_->Stats().pending_bytes); });
  counter("portcullis_fetches_cancelled_total", "Fetches without a reader cancelled to free their slot.", {},
          &fetches_.cancelled_abandoned);
  metrics_.Callback("portcullis_cache_entries", "Entries in the cache, by kind.", "gauge", {{"kind", "blob"}},
                    [this] { return static_cast<double>(store_->Stats().blobs); });
  metrics_.Callback("portcullis_cache_entries", "Entries in the cache, by kind.", "gauge", {{"kind", "manifest"}},
                    [this] { return static_cast<double>(store_->Stats().manifests); });
}

std::shared_ptr<const Router> Registry::router() const {
  std::lock_guard<std::mutex> l(router_mu_);
  return router_;
}

StatusOr<Route> Registry::Resolve(const std::string& name, const std::string& ns) const {
  std::shared_ptr<const Router> r = router();
  PC_ASSIGN_OR_RETURN(Route route, r->Resolve(name, ns));
  route.keep = r;
  return route;
}

void Registry::SwapRouter(std::unique_ptr<Router> router) {
  std::shared_ptr<const Router> next(std::move(router));
  std::lock_guard<std::mutex> l(router_mu_);
  router_ = next;
}

Status Registry::ConfirmBlobInRepo(const Route& route, const oci::Digest& d) {
  if (store_->HasLink(route.Key(), d)) return Status::Ok();
  PC_ASSIGN_OR_RETURN(oci::HttpResponse resp, upstream::HeadBlob(route, d));
  if (resp.status == 404) return Status::BlobUnknown("blob " + d.ToString() + " is not known in " + route.Key());
  if (resp.status != 200) return oci::UpstreamHttpError(resp.status, "blob " + d.ToString());
  return store_->PutLinks(route.Key(), {d});
}

StatusOr<BlobSource> Registry::OpenCached(const Route& route, const oci::Digest& d, bool* found) {
  *found = false;
  BlobSource src;
  src.digest = d;
  src.pin = std::make_shared<StorePin>(store_.get(), d);
  PC_ASSIGN_OR_RETURN(auto meta, store_->GetBlobMeta(d));
  if (!meta || !meta->complete) return src;
  *found = true;
  // Bytes are shared across repositories, access is not: the repo must hold it.
  PC_RETURN_IF_ERROR(ConfirmBlobInRepo(route, d));
  ++counters_.blob_hits;
  store_->Touch(d);
  src.size = static_cast<int64_t>(meta->size);
  src.chunk_bytes = meta->chunk_bytes;
  src.cache_hit = true;
  return src;
}

StatusOr<BlobSource> Registry::OpenBlob(const Route& route, const oci::Digest& d) {
  bool found = false;
  PC_ASSIGN_OR_RETURN(BlobSource src, OpenCached(route, d, &found));
  if (found) return src;
  ++counters_.blob_misses;
  bool started = false;
  std::string upstream_name = route.upstream->name;
  std::string repo = route.repo;
  std::string key = route.Key();
  Store* store = store_.get();
  Counters* counters = &counters_;
  auto joined = fetches_.Join(upstream_name, d, route.upstream->client, route.repo, &started,
                              [=](const BlobFetch& f) {
        counters->upstream_bytes += f.size_committed();
        if (f.committed()) {
          (void)store->PutLinks(key, {f.digest()});
          store->Touch(f.digest());
          Log(LogLevel::kInfo, "blob cached",
              {{"upstream", upstream_name}, {"repo", repo}, {"digest", f.digest().ToString()},
               {"bytes", f.size_committed()}});
        } else if (f.serve_through() && !f.failed()) {
          Log(LogLevel::kInfo, "blob served through, not cached (another upstream's fetch of it was writing it)",
              {{"upstream", upstream_name}, {"repo", repo}, {"digest", f.digest().ToString()},
               {"bytes", f.size_committed()}});
        } else {
          Log(LogLevel::kError, "blob fetch failed; nothing cached",
              {{"upstream", upstream_name}, {"repo", repo}, {"digest", f.digest().ToString()},
               {"error", f.failure().ToString()}});
        }
      });
  if (!joined.ok() && joined.status().Is(Code::kAlreadyExists)) {
    // An earlier fetch committed it after the look above (review L2).
    PC_ASSIGN_OR_RETURN(src, OpenCached(route, d, &found));
    if (found) return src;
    return Status::UpstreamUnavailable("blob " + d.ToString() + " changed while it was opened; retry");
  }
  PC_ASSIGN_OR_RETURN(src.fetch, std::move(joined));
  if (started) {
    ++counters_.upstream_blob_fetches;
  } else {
    ++counters_.coalesced_waiters;
    // Joining another repository's fetch: make sure this repo may have it.
    PC_RETURN_IF_ERROR(ConfirmBlobInRepo(route, d));
  }
  int64_t size = -1;
  PC_RETURN_IF_ERROR(src.fetch->WaitForHeaders(std::chrono::seconds(cfg_.upstream_timeout_seconds), &size));
  // The upstream is sending it from this repository: later clients of the same
  // repository need no HEAD of their own.
  if (started) PC_RETURN_IF_ERROR(store_->PutLinks(route.Key(), {d}));
  src.size = size;
  src.chunk_bytes = static_cast<uint64_t>(cfg_.chunk_bytes);
  return src;
}

StatusOr<int64_t> Registry::StatBlob(const Route& route, const oci::Digest& d, bool* cache_hit) {
  PC_ASSIGN_OR_RETURN(auto meta, store_->GetBlobMeta(d));
  if (meta && meta->complete && store_->HasLink(route.Key(), d)) {
    *cache_hit = true;
    return static_cast<int64_t>(meta->size);
  }
  *cache_hit = false;
  PC_ASSIGN_OR_RETURN(oci::HttpResponse resp, upstream::HeadBlob(route, d));
  if (resp.status == 404) return Status::BlobUnknown("blob " + d.ToString() + " is unknown to " + route.Key());
  if (resp.status != 200) return oci::UpstreamHttpError(resp.status, "blob " + d.ToString());
  std::string cl = oci::HeaderValue(resp.headers, "Content-Length");
  int64_t size = -1;
  auto [end, ec] = std::from_chars(cl.data(), cl.data() + cl.size(), size);
  if (cl.empty() || ec != std::errc() || end != cl.data() + cl.size() || size < 0) {
    return Status::UpstreamInvalid("upstream HEAD of blob " + d.ToString() + " in " + route.Key() +
                                   " has no valid Content-Length (\"" + cl.substr(0, 40) + "\")");
  }
  return size;
}

}  // namespace portcullis::proxy
