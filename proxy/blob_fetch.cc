#include "proxy/blob_fetch.h"

#include <system_error>
#include <thread>

#include "oci/errors.h"

namespace portcullis::proxy {

BlobFetch::BlobFetch(oci::Digest digest, std::shared_ptr<Store> store, uint64_t chunk_bytes)
    : digest_(std::move(digest)), store_(std::move(store)), chunk_bytes_(chunk_bytes) {}

Status BlobFetch::WaitForHeaders(std::chrono::milliseconds timeout, int64_t* size) {
  std::unique_lock<std::mutex> l(mu_);
  if (!cv_.wait_for(l, timeout, [&] { return headers_ || failed_; })) {
    return Status::UpstreamUnavailable("upstream did not answer for " + digest_.ToString() + " in time");
  }
  if (failed_ && !headers_) return failure_;
  *size = size_;
  return Status::Ok();
}

bool BlobFetch::committed() const {
  std::lock_guard<std::mutex> l(mu_);
  return committed_;
}

bool BlobFetch::WaitDone(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait_for(l, timeout, [&] { return committed_ || failed_; });
  return committed_;
}

bool BlobFetch::failed() const {
  std::lock_guard<std::mutex> l(mu_);
  return failed_;
}

uint64_t BlobFetch::size_committed() const {
  std::lock_guard<std::mutex> l(mu_);
  return received_;
}

Status BlobFetch::failure() const {
  std::lock_guard<std::mutex> l(mu_);
  return failure_;
}

BlobFetch::ReadResult BlobFetch::Read(uint64_t offset, size_t max, uint64_t hold_at, std::string* out,
                                      std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> l(mu_);
  // UINT64_MAX as hold_at (size unknown): withhold the last byte received so far.
  auto limit = [&] {
    if (verified_) return received_;
    if (hold_at == UINT64_MAX) return received_ > 0 ? received_ - 1 : 0;
    return std::min(received_, hold_at);
  };
  if (!cv_.wait_for(l, wait, [&] { return failed_ || offset < limit() || (verified_ && offset >= received_); })) {
    return ReadResult::kTimeout;
  }
  if (failed_) return ReadResult::kFailed;
  if (verified_ && offset >= received_) return ReadResult::kEnd;
  uint64_t lim = limit();
  uint64_t flushed_bytes = flushed_chunks_ * chunk_bytes_;
  if (offset >= flushed_bytes) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(lim - offset, max));
    out->append(buffer_, static_cast<size_t>(offset - flushed_bytes), n);
    return ReadResult::kData;
  }
  // The bytes are in a chunk already in the store: read it without the lock.
  uint64_t index = offset / chunk_bytes_;
  uint64_t in_chunk = offset % chunk_bytes_;
  l.unlock();
  rocksdb::PinnableSlice chunk;
  if (!store_->ReadChunk(digest_, index, &chunk).ok() || chunk.size() <= in_chunk) return ReadResult::kFailed;
  uint64_t n = std::min<uint64_t>({chunk.size() - in_chunk, lim - offset, max});
  out->append(chunk.data() + in_chunk, static_cast<size_t>(n));
  return ReadResult::kData;
}

void BlobFetch::Fail(Status st) {
  // Drop whatever was written first, so nothing of a bad blob stays behind.
  (void)store_->DropBlob(digest_);
  std::lock_guard<std::mutex> l(mu_);
  failed_ = true;
  failure_ = std::move(st);
  cv_.notify_all();
}

void BlobFetch::Run(oci::RegistryClient* client, const std::string& repo) {
  // This runs on a thread of its own: an exception escaping it would end the
  // process. Whatever throws (a library, an allocation), the fetch fails cleanly.
  try {
    Fetch(client, repo);
  } catch (const std::exception& e) {
    Fail(Status::Internal("blob fetch of " + digest_.ToString() + " failed: " + std::string(e.what()).substr(0, 200)));
  } catch (...) {
    Fail(Status::Internal("blob fetch of " + digest_.ToString() + " failed with an unknown exception"));
  }
}

void BlobFetch::Fetch(oci::RegistryClient* client, const std::string& repo) {
  auto hasher = oci::Hasher::Create(digest_.algorithm());
  Status answer;  // the mapped upstream status when not 200
  Status write_error;
  oci::HttpRequest req;
  req.target = "/v2/" + repo + "/blobs/" + digest_.ToString();
  req.scope = "repository:" + repo + ":pull";
  {
    std::lock_guard<std::mutex> l(mu_);
    buffer_.reserve(chunk_bytes_);
  }
  auto on_headers = [&](int status, const oci::Headers& h) {
    if (status != 200) {
      if (status == 404) {
        answer = Status::BlobUnknown("blob " + digest_.ToString() + " is not in " + repo + " upstream");
      } else {
        answer = oci::UpstreamHttpError(status, "blob " + digest_.ToString() + " in " + repo);
      }
      return false;
    }
    int64_t size = -1;
    std::string cl = oci::HeaderValue(h, "Content-Length");
    if (!cl.empty() && cl.size() < 19 && cl.find_first_not_of("0123456789") == std::string::npos) {
      size = std::stoll(cl);
    }
    Status st = store_->BeginBlob(digest_, chunk_bytes_);
    if (!st.ok()) {
      write_error = st;
      return false;
    }
    std::lock_guard<std::mutex> l(mu_);
    headers_ = true;
    size_ = size;
    cv_.notify_all();
    return true;
  };
  auto on_data = [&](const char* data, size_t n) {
    hasher->Update(data, n);
    while (n > 0) {
      size_t room = static_cast<size_t>(chunk_bytes_) - buffer_.size();
      size_t take = std::min(room, n);
      {
        std::lock_guard<std::mutex> l(mu_);
        buffer_.append(data, take);
        received_ += take;
        // Waking every reader per 4 KiB read costs more than the bytes: wake
        // them per 64 KiB and at each chunk's end (and at commit or failure).
        if (received_ - notified_ >= 64 * 1024 || buffer_.size() == chunk_bytes_) {
          notified_ = received_;
          cv_.notify_all();
        }
      }
      data += take;
      n -= take;
      if (buffer_.size() == chunk_bytes_) {
        // Only this thread mutates buffer_, so reading it unlocked is safe.
        Status st = store_->PutChunk(digest_, flushed_chunks_, buffer_);
        if (!st.ok()) {
          write_error = st;
          return false;
        }
        std::lock_guard<std::mutex> l(mu_);
        ++flushed_chunks_;
        buffer_.clear();
      }
    }
    return true;
  };
  auto r = client->Stream(req, on_headers, on_data);
  if (!write_error.ok()) return Fail(write_error);
  if (!answer.ok()) return Fail(answer);
  if (!r.ok()) return Fail(r.status());
  if (r->status != 200) return Fail(oci::UpstreamHttpError(r->status, "blob " + digest_.ToString() + " in " + repo));
  uint64_t received;
  int64_t size;
  {
    std::lock_guard<std::mutex> l(mu_);
    received = received_;
    size = size_;
  }
  if (size >= 0 && received != static_cast<uint64_t>(size)) {
    return Fail(Status::SizeInvalid("upstream sent " + std::to_string(received) + " bytes of " +
                                    digest_.ToString() + ", Content-Length said " + std::to_string(size)));
  }
  oci::Digest got = hasher->Finish();
  if (got != digest_) {
    return Fail(Status::DigestInvalid("upstream sent bytes for " + digest_.ToString() + " whose digest is " +
                                      got.ToString() + "; dropped, not cached"));
  }
  {
    // The bytes are proven: readers may finish while the commit makes them durable.
    std::lock_guard<std::mutex> l(mu_);
    verified_ = true;
    cv_.notify_all();
  }
  Status st = store_->CommitBlob(digest_, flushed_chunks_, buffer_, received, chunk_bytes_);
  if (!st.ok()) return Fail(st);
  std::lock_guard<std::mutex> l(mu_);
  committed_ = true;
  cv_.notify_all();
}

FetchTable::FetchTable(std::shared_ptr<Store> store, uint64_t chunk_bytes, size_t max_inflight)
    : store_(std::move(store)), chunk_bytes_(chunk_bytes), max_inflight_(max_inflight) {}

StatusOr<std::shared_ptr<BlobFetch>> FetchTable::Join(const oci::Digest& d,
                                                      std::shared_ptr<oci::RegistryClient> client,
                                                      const std::string& repo, bool* started,
                                                      const std::function<void(const BlobFetch&)>& on_done) {
  std::shared_ptr<BlobFetch> fetch;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = running_.find(d);
    // A fetch that already failed is finishing; it must not be joined.
    if (it != running_.end() && !it->second->failed()) {
      *started = false;
      return it->second;
    }
    if (running_.size() >= max_inflight_) {
      return Status::TooManyRequests(std::to_string(max_inflight_) +
                                     " upstream blob fetches are running; retry shortly");
    }
    fetch = std::make_shared<BlobFetch>(d, store_, chunk_bytes_);
    running_[d] = fetch;
    ++threads_;
    *started = true;
  }
  auto forget = [this, fetch] {
    std::lock_guard<std::mutex> l(mu_);
    auto it = running_.find(fetch->digest());
    if (it != running_.end() && it->second == fetch) running_.erase(it);
  };
  try {
    std::function<void()> body = [this, fetch, client, repo, on_done, forget] {
      fetch->Run(client.get(), repo);
      forget();
      try {
        if (on_done) on_done(*fetch);
      } catch (...) {
        // on_done only logs and records; its failure must not end the process.
      }
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
    forget();
    std::lock_guard<std::mutex> l(mu_);
    --threads_;
    idle_cv_.notify_all();
    return Status::UpstreamUnavailable("cannot start a fetch for " + d.ToString() + " (out of threads); retry shortly");
  }
  return fetch;
}

size_t FetchTable::inflight() const {
  std::lock_guard<std::mutex> l(mu_);
  return running_.size();
}

bool FetchTable::Running(const oci::Digest& d) const {
  std::lock_guard<std::mutex> l(mu_);
  return running_.count(d) > 0;
}

bool FetchTable::WaitIdle(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> l(mu_);
  return idle_cv_.wait_until(l, deadline, [&] { return threads_ == 0; });
}

}  // namespace portcullis::proxy
