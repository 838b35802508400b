#include "proxy/maintenance.h"

#include <algorithm>
#include <set>

#include "proxy/log.h"
#include "oci/reference.h"

namespace portcullis::proxy {

Maintenance::Maintenance(Store* store, FetchTable* fetches, uint64_t max_bytes)
    : store_(store), fetches_(fetches), max_bytes_(max_bytes) {}

Maintenance::~Maintenance() { Stop(); }

void Maintenance::Start(std::chrono::milliseconds period) {
  thread_ = std::thread([this, period] { Loop(period); });
}

void Maintenance::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  (void)store_->FlushAccess();
}

void Maintenance::Nudge() {
  {
    std::lock_guard<std::mutex> l(mu_);
    nudged_ = true;
  }
  cv_.notify_all();
}

void Maintenance::Loop(std::chrono::milliseconds period) {
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    cv_.wait_for(l, period, [&] { return stop_ || nudged_; });
    if (stop_) break;
    nudged_ = false;
    l.unlock();
    if (Status st = store_->FlushAccess(); !st.ok()) {
      Log(LogLevel::kError, "could not write last-access times", {{"error", st.ToString()}});
    }
    auto ev = EvictIfNeeded();
    if (!ev.ok()) Log(LogLevel::kError, "eviction failed", {{"error", ev.status().ToString()}});
    l.lock();
  }
}

namespace {
// Complete blobs plus the bytes fetches in flight may still write (review M6).
uint64_t CountedBytes(const StoreStats& s) { return s.blob_bytes + s.pending_bytes; }
}  // namespace

StatusOr<uint64_t> Maintenance::EvictIfNeeded() {
  if (max_bytes_ == 0 || CountedBytes(store_->Stats()) <= max_bytes_) return uint64_t(0);
  std::lock_guard<std::mutex> work(work_mu_);
  PC_ASSIGN_OR_RETURN(auto blobs, store_->ListBlobs());
  std::sort(blobs.begin(), blobs.end(), [](const auto& a, const auto& b) { return a.last_access < b.last_access; });
  const uint64_t low = max_bytes_ / 10 * 9;
  uint64_t n = 0, bytes = 0, manifests = 0, tags = 0;
  for (const auto& b : blobs) {
    if (CountedBytes(store_->Stats()) <= low) break;
    auto hold = fetches_->HoldIdle(b.digest);  // no fetch starts while it is dropped
    if (!hold || store_->Pinned(b.digest)) continue;
    PC_RETURN_IF_ERROR(store_->DropBlob(b.digest));
    PC_RETURN_IF_ERROR(store_->DropDependents(b.digest, &manifests, &tags));
    ++n;
    bytes += b.size;
  }
  if (n == 0) return n;
  evictions += n;
  evicted_bytes += bytes;
  PC_RETURN_IF_ERROR(store_->CompactChunks());
  Log(LogLevel::kInfo, "evicted least-recently-used blobs",
      {{"blobs", n}, {"bytes", bytes}, {"manifests_dropped", manifests}, {"tags_dropped", tags},
       {"cache_bytes", store_->Stats().blob_bytes}, {"pending_bytes", store_->Stats().pending_bytes},
       {"max_bytes", max_bytes_}});
  return n;
}

StatusOr<GcResult> Maintenance::Gc() {
  std::lock_guard<std::mutex> work(work_mu_);
  GcResult r;
  PC_ASSIGN_OR_RETURN(auto links, store_->LinksByDigest());
  PC_ASSIGN_OR_RETURN(auto blobs, store_->ListBlobs());
  uint64_t manifests = 0, tags = 0;
  for (const auto& b : blobs) {
    if (links.count(b.digest.ToString())) continue;
    auto hold = fetches_->HoldIdle(b.digest);
    if (!hold || store_->Pinned(b.digest)) continue;
    PC_RETURN_IF_ERROR(store_->DropBlob(b.digest));
    ++r.blobs;
    r.bytes += b.size;
  }
  PC_ASSIGN_OR_RETURN(auto ms, store_->ListManifests());
  for (const auto& m : ms) {
    if (links.count(m.digest.ToString())) continue;
    PC_RETURN_IF_ERROR(store_->DeleteManifest(m.digest));
    PC_RETURN_IF_ERROR(store_->DropDependents(m.digest, &manifests, &tags));
    ++r.manifests;
  }
  r.manifests += manifests;
  if (r.blobs > 0) PC_RETURN_IF_ERROR(store_->CompactChunks());
  return r;
}

StatusOr<PurgeResult> Maintenance::Purge(const std::string& target) {
  PurgeResult r;
  if (target.rfind("sha256:", 0) == 0 || target.rfind("sha512:", 0) == 0) {
    PC_ASSIGN_OR_RETURN(oci::Digest d, oci::Digest::Parse(target));
    std::lock_guard<std::mutex> work(work_mu_);
    // Held for the whole purge: a fetch starting during the scan below would
    // write chunks that DropBlob then deletes under a later complete record (review L2).
    auto hold = fetches_->HoldIdle(d);
    if (!hold) return Status::TooManyRequests("blob " + target + " is being fetched; retry shortly");
    PC_ASSIGN_OR_RETURN(auto meta, store_->GetBlobMeta(d));
    PC_ASSIGN_OR_RETURN(auto man, store_->GetManifest(d));
    PC_RETURN_IF_ERROR(store_->DeleteLinksTo(d, &r.tags));
    if (meta) {
      PC_RETURN_IF_ERROR(store_->DropBlob(d));
      ++r.blobs;
    }
    if (man) {
      PC_RETURN_IF_ERROR(store_->DeleteManifest(d));
      ++r.manifests;
    }
    PC_RETURN_IF_ERROR(store_->DropDependents(d, &r.manifests, &r.tags));
    if (r.blobs + r.manifests + r.tags == 0) return Status::NotFound("nothing cached for " + target);
    if (r.blobs > 0) PC_RETURN_IF_ERROR(store_->CompactChunks());
    return r;
  }
  auto slash = target.find('/');
  if (slash == std::string::npos || slash == 0) {
    return Status::InvalidArgument("purge target \"" + target.substr(0, 200) +
                                   "\" is neither a digest nor UPSTREAM/REPOSITORY (e.g. docker.io/library/alpine)");
  }
  PC_RETURN_IF_ERROR(oci::ValidateRepository(target.substr(slash + 1)));
  {
    std::lock_guard<std::mutex> work(work_mu_);
    PC_RETURN_IF_ERROR(store_->DeleteRepo(target, &r.links, &r.tags));
  }
  if (r.links + r.tags == 0) return Status::NotFound("nothing cached for " + target);
  PC_ASSIGN_OR_RETURN(GcResult gc, Gc());
  r.blobs = gc.blobs;
  r.manifests = gc.manifests;
  return r;
}

StatusOr<FsckResult> Maintenance::Fsck() {
  std::lock_guard<std::mutex> work(work_mu_);
  FsckResult r;
  PC_ASSIGN_OR_RETURN(auto blobs, store_->ListBlobs());
  for (const auto& b : blobs) {
    auto hold = fetches_->HoldIdle(b.digest);
    if (!hold) continue;
    ++r.checked;
    auto hasher = oci::Hasher::Create(b.digest.algorithm());
    uint64_t got = 0;
    bool readable = hasher != nullptr && b.chunk_bytes > 0;
    for (uint64_t i = 0; readable && got < b.size; ++i) {
      rocksdb::PinnableSlice chunk;
      if (!store_->ReadChunk(b.digest, i, &chunk, /*verify=*/true).ok() || chunk.size() == 0) {
        readable = false;
        break;
      }
      hasher->Update(chunk.data(), chunk.size());
      got += chunk.size();
    }
    if (readable && got == b.size && hasher->Finish() == b.digest) continue;
    Log(LogLevel::kError, "fsck: stored blob is damaged; dropped (it will be fetched again)",
        {{"digest", b.digest.ToString()}, {"readable", readable}, {"bytes_read", got}, {"size", b.size}});
    PC_RETURN_IF_ERROR(store_->DropBlob(b.digest));
    r.bad.push_back(b.digest.ToString());
  }
  PC_ASSIGN_OR_RETURN(auto ms, store_->ListManifests());
  for (const auto& m : ms) {
    ++r.checked;
    auto stored = store_->GetManifest(m.digest);
    if (stored.ok() && *stored) {
      auto h = oci::Hasher::Create(m.digest.algorithm());
      h->Update((*stored)->bytes);
      if (h->Finish() == m.digest) continue;
    }
    Log(LogLevel::kError, "fsck: stored manifest is damaged; dropped", {{"digest", m.digest.ToString()}});
    PC_RETURN_IF_ERROR(store_->DeleteManifest(m.digest));
    r.bad.push_back(m.digest.ToString());
  }
  if (!r.bad.empty()) PC_RETURN_IF_ERROR(store_->CompactChunks());
  return r;
}

}  // namespace portcullis::proxy
