// FetchTable (proxy/blob_fetch.h): the running fetches, bounded, by digest.
#include <algorithm>
#include <system_error>
#include <thread>
#include <vector>

#include "proxy/blob_fetch.h"

namespace portcullis::proxy {

FetchTable::FetchTable(std::shared_ptr<Store> store, uint64_t chunk_bytes, size_t max_inflight, FetchWindow window,
                       FetchLimits limits)
    : store_(std::move(store)),
      chunk_bytes_(chunk_bytes),
      max_inflight_(max_inflight),
      window_(window),
      limits_(limits) {}

std::shared_ptr<BlobFetch> FetchTable::WithReader(const std::shared_ptr<BlobFetch>& f) {
  f->ReaderJoined();
  // Not an owner of its own: the deleter keeps the fetch alive and, once the
  // last copy of this pointer is gone, counts the reader out. (Should this
  // constructor throw, it calls the deleter: the count stays balanced.)
  return std::shared_ptr<BlobFetch>(f.get(), [keep = f](BlobFetch*) { keep->ReaderLeft(); });
}

size_t FetchTable::ActiveLocked() const {
  size_t n = 0;
  // A fetch that failed or committed is only finishing (on_done): its slot is as good as free.
  for (const auto& [d, f] : running_) n += (f->cancelled() || f->failed() || f->committed()) ? 0 : 1;
  return n;
}

bool FetchTable::CancelOldestAbandonedLocked() {
  // Candidates: no reader. Cancel fails on one that is verified (committing) or
  // ended; then the next oldest is tried.
  std::vector<std::shared_ptr<BlobFetch>> idle;
  for (const auto& [d, f] : running_) {
    if (f->readers() == 0 && !f->cancelled()) idle.push_back(f);
  }
  std::sort(idle.begin(), idle.end(), [](const auto& a, const auto& b) { return a->idle_since() < b->idle_since(); });
  for (const auto& f : idle) {
    if (f->Cancel(Status::UpstreamUnavailable("fetch of " + f->digest().ToString() +
                                              " cancelled: no client was reading it and its slot was needed"))) {
      ++cancelled_abandoned;
      return true;
    }
  }
  return false;
}

StatusOr<std::shared_ptr<BlobFetch>> FetchTable::Join(const std::string& upstream, const oci::Digest& d,
                                                      std::shared_ptr<oci::RegistryClient> client,
                                                      const std::string& repo, bool* started,
                                                      const std::function<void(const BlobFetch&)>& on_done) {
  std::shared_ptr<BlobFetch> fetch, reader;
  const Key key(d, upstream);
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = running_.find(key);
    // A fetch that already failed is finishing; it must not be joined.
    if (it != running_.end() && !it->second->failed()) {
      // Cancelled, it has yet to drop what it wrote: neither join nor replace it.
      if (it->second->cancelled()) {
        return Status::TooManyRequests("the fetch of " + d.ToString() + " is being cancelled; retry shortly");
      }
      *started = false;
      return WithReader(it->second);
    }
    if (held_.count(d)) return Status::TooManyRequests("blob " + d.ToString() + " is being removed; retry shortly");
    // Under mu_: no other fetch of `d` can commit between this look and BeginBlob.
    PC_ASSIGN_OR_RETURN(auto meta, store_->GetBlobMeta(d));
    if (meta && meta->complete) return Status::AlreadyExists("blob " + d.ToString() + " is cached");
    // Fetches cancelled, failed or committed that are still finishing hold no
    // slot, but stay bounded too.
    if ((ActiveLocked() >= max_inflight_ && !CancelOldestAbandonedLocked()) || running_.size() >= 2 * max_inflight_) {
      return Status::TooManyRequests(std::to_string(max_inflight_) +
                                     " upstream blob fetches are running; retry shortly");
    }
    fetch = std::make_shared<BlobFetch>(d, store_, chunk_bytes_, window_, pool_, limits_);
    // Another upstream's fetch of `d` that has not failed (a cancelled one has
    // yet to drop what it wrote) owns the digest's record: serve through.
    for (auto j = running_.lower_bound(Key(d, "")); j != running_.end() && j->first.first == d; ++j) {
      if (j->first.second != upstream && !j->second->serve_through() && !j->second->failed()) {
        fetch->serve_through_ = true;
      }
    }
    if (before_write_) fetch->set_before_write_for_test(before_write_);
    if (on_reserve_) fetch->set_on_reserve(on_reserve_);
    reader = WithReader(fetch);  // counted before any other Join can see it
    running_[key] = fetch;
    ++threads_;
    *started = true;
  }
  auto forget = [this, key](const std::shared_ptr<BlobFetch>& f) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = running_.find(key);
    if (it != running_.end() && it->second == f) running_.erase(it);
  };
  try {
    std::function<void()> body = [this, fetch, client, repo, on_done = on_done, forget]() mutable {
      fetch->Run(client.get(), repo);
      forget(fetch);
      try {
        if (on_done) on_done(*fetch);
      } catch (...) {
        // on_done only logs and records; its failure must not end the process.
      }
      // Everything this thread owns goes before it says it is done: once the
      // table is idle its owner may close the store and the upstream clients
      // and end the process, and a last reference dropped here afterwards
      // would destroy them on this thread meanwhile (main's 39ca91c, ported).
      fetch.reset();
      client.reset();
      on_done = nullptr;
      std::lock_guard<std::mutex> l(mu_);
      --threads_;
      idle_cv_.notify_all();
    };
    if (spawner_) {
      spawner_(std::move(body));
    } else {
      std::thread(std::move(body)).detach();
    }
  } catch (const std::system_error& e) {
    // No thread (EAGAIN under a process limit): give the slot back, and fail
    // the fetch so nobody who joined it in the meantime waits for it.
    fetch->Fail(Status::UpstreamUnavailable("cannot start a fetch thread for " + d.ToString() + ": " + e.what()));
    forget(fetch);
    std::lock_guard<std::mutex> l(mu_);
    --threads_;
    idle_cv_.notify_all();
    return Status::UpstreamUnavailable("cannot start a fetch for " + d.ToString() + " (out of threads); retry shortly");
  }
  return reader;
}

size_t FetchTable::inflight() const {
  std::lock_guard<std::mutex> l(mu_);
  return running_.size();
}

std::optional<FetchTable::Hold> FetchTable::HoldIdle(const oci::Digest& d) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = running_.lower_bound(Key(d, ""));
  if (it != running_.end() && it->first.first == d) return std::nullopt;
  ++held_[d];
  return Hold(this, d);
}

FetchTable::Hold::~Hold() {
  if (table_ == nullptr) return;
  std::lock_guard<std::mutex> l(table_->mu_);
  auto it = table_->held_.find(d_);
  if (it != table_->held_.end() && --it->second == 0) table_->held_.erase(it);
}

bool FetchTable::Running(const oci::Digest& d) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = running_.lower_bound(Key(d, ""));
  return it != running_.end() && it->first.first == d;
}

bool FetchTable::WaitIdle(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> l(mu_);
  return idle_cv_.wait_until(l, deadline, [&] { return threads_ == 0; });
}

}  // namespace portcullis::proxy
