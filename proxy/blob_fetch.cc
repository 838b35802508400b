#include "proxy/blob_fetch.h"

#include <malloc.h>

#include <system_error>
#include <thread>

#include "oci/errors.h"
#include "proxy/upstream.h"

namespace portcullis::proxy {

using namespace std::chrono_literals;

BlobFetch::BlobFetch(oci::Digest digest, std::shared_ptr<Store> store, uint64_t chunk_bytes, FetchWindow window,
                     std::shared_ptr<std::atomic<size_t>> pool)
    : digest_(std::move(digest)),
      store_(std::move(store)),
      chunk_bytes_(chunk_bytes),
      window_(window),
      pool_(std::move(pool)) {}

BlobFetch::~BlobFetch() {
  std::lock_guard<std::mutex> l(mu_);
  ReturnBorrowed();
}

void BlobFetch::ReturnBorrowed() {
  if (borrowed_ > 0 && pool_) pool_->fetch_sub(borrowed_);
  borrowed_ = 0;
}

bool BlobFetch::RoomForChunk() {
  if (complete_ - stored_ < window_.max_pending + borrowed_) return true;
  if (!pool_) return false;
  size_t used = pool_->load();
  while (used < window_.shared_chunks) {
    if (pool_->compare_exchange_weak(used, used + 1)) {
      ++borrowed_;
      return true;
    }
  }
  return false;
}

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

uint64_t BlobFetch::stored_chunks_for_test() const {
  std::lock_guard<std::mutex> l(mu_);
  return stored_;
}

uint64_t BlobFetch::window_first_for_test() const {
  std::lock_guard<std::mutex> l(mu_);
  return first_;
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
  const uint64_t lim = limit();
  const uint64_t index = offset / chunk_bytes_;
  const uint64_t in_chunk = offset % chunk_bytes_;
  if (index >= first_ && index - first_ < chunks_.size()) {
    // In the window. The bytes below `lim` are never modified again (a chunk is
    // only appended to, in capacity reserved up front), so the copy can run
    // without the lock while `chunk` keeps them alive.
    std::shared_ptr<std::string> chunk = chunks_[static_cast<size_t>(index - first_)];
    const char* data = chunk->data();
    l.unlock();
    const uint64_t n = std::min<uint64_t>({chunk_bytes_ - in_chunk, lim - offset, max});
    out->append(data + in_chunk, static_cast<size_t>(n));
    return ReadResult::kData;
  }
  // Behind the window (a slow reader, or the window freed at commit): only
  // chunks already in the store leave the window, so read it there.
  l.unlock();
  rocksdb::PinnableSlice chunk;
  if (!store_->ReadChunk(digest_, index, &chunk).ok() || chunk.size() <= in_chunk) return ReadResult::kFailed;
  uint64_t n = std::min<uint64_t>({chunk.size() - in_chunk, lim - offset, max});
  out->append(chunk.data() + in_chunk, static_cast<size_t>(n));
  return ReadResult::kData;
}

void BlobFetch::Fail(Status st) {
  // Drop whatever this fetch wrote, so nothing of a bad blob stays behind.
  // (The fetch's writer has stopped by now: BlobFetch::Writer.) A fetch that
  // wrote nothing drops nothing: the digest may be complete from an earlier one.
  if (began_.load()) (void)store_->DropBlob(digest_);
  std::lock_guard<std::mutex> l(mu_);
  failed_ = true;
  failure_ = std::move(st);
  chunks_.clear();  // readers fail from now on; the window's memory goes
  ReturnBorrowed();
  cv_.notify_all();
}

bool BlobFetch::WriteOne(std::unique_lock<std::mutex>& l) {
  if (stored_ >= complete_ || !write_error_.ok()) return false;
  const uint64_t index = stored_;
  // Chunks at or after stored_ never leave the window, and a complete chunk is never modified.
  std::shared_ptr<std::string> chunk = chunks_[static_cast<size_t>(index - first_)];
  l.unlock();
  if (before_write_) before_write_(index);
  Status st = store_->PutChunk(digest_, index, *chunk);
  l.lock();
  if (!st.ok()) {
    write_error_ = st;
    writer_cv_.notify_all();
    return false;
  }
  ++stored_;
  if (borrowed_ > 0) {  // a stored chunk gives its borrowed place back
    --borrowed_;
    if (pool_) pool_->fetch_sub(1);
  }
  while (chunks_.size() > window_.keep_chunks && first_ < stored_) {
    chunks_.pop_front();
    ++first_;
  }
  writer_cv_.notify_all();
  return true;
}

void BlobFetch::WriteLoop() {
  std::unique_lock<std::mutex> l(mu_);
  try {
    for (;;) {
      if (WriteOne(l)) continue;
      if (!write_error_.ok() || stop_) return;
      writer_cv_.wait(l);
    }
  } catch (const std::exception& e) {
    if (!l.owns_lock()) l.lock();
    write_error_ = Status::Internal("writing " + digest_.ToString() + ": " + std::string(e.what()).substr(0, 200));
    writer_cv_.notify_all();
  }
}

// The fetch's writer thread, stopped and joined whatever way Fetch() ends
// (before Fail drops the blob, so no chunk is written after the drop).
class BlobFetch::Writer {
 public:
  explicit Writer(BlobFetch* f) : f_(f) {
    try {
      thread_ = std::thread([f] { f->WriteLoop(); });
    } catch (const std::system_error&) {
      inline_ = true;  // no thread: the fetch thread writes each chunk itself
    }
  }
  ~Writer() { Stop(true); }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  bool inline_mode() const { return inline_; }
  // Waits until every complete chunk is in the store; the first write error otherwise.
  Status Drain() {
    Stop(false);
    std::lock_guard<std::mutex> l(f_->mu_);
    return f_->write_error_;
  }
  // Stops the writer after the chunk it is writing (the fetch failed).
  void Abandon() { Stop(true); }

 private:
  void Stop(bool abandon) {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> l(f_->mu_);
      f_->stop_ = true;
      if (abandon && f_->write_error_.ok()) f_->write_error_ = Status::Internal("fetch abandoned");
      f_->writer_cv_.notify_all();
    }
    thread_.join();
  }

  BlobFetch* f_;
  std::thread thread_;
  bool inline_ = false;
};

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
  // The window's chunks (up to keep + max_pending + the pool's share) went
  // back to malloc at the commit or failure; glibc keeps freed 1 MiB blocks in
  // its arenas, so without this the process's RSS would stay at the largest
  // window it ever had. Give them back to the system.
  malloc_trim(0);
}

void BlobFetch::Fetch(oci::RegistryClient* client, const std::string& repo) {
  auto hasher = oci::Hasher::Create(digest_.algorithm());
  Status answer;  // the mapped upstream status when not 200
  Status write_error;
  const oci::HttpRequest req = upstream::BlobGet(repo, digest_);
  Writer writer(this);
  auto fail = [&](Status st) {
    writer.Abandon();
    Fail(std::move(st));
  };
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
    began_ = true;
    std::lock_guard<std::mutex> l(mu_);
    headers_ = true;
    size_ = size;
    cv_.notify_all();
    return true;
  };
  auto on_data = [&](const char* data, size_t n) {
    hasher->Update(data, n);
    std::unique_lock<std::mutex> l(mu_);
    while (n > 0) {
      if (chunks_.empty() || chunks_.back()->size() == chunk_bytes_) {
        // A new chunk: wait until the writer is less than max_pending chunks
        // behind, or the pool lends one (another fetch's return does not wake
        // this one: look again every 5 ms).
        while (write_error_.ok() && !RoomForChunk()) writer_cv_.wait_for(l, 5ms);
        if (!write_error_.ok()) {
          write_error = write_error_;
          return false;
        }
        auto chunk = std::make_shared<std::string>();
        chunk->reserve(static_cast<size_t>(chunk_bytes_));
        chunks_.push_back(std::move(chunk));
      }
      std::string& chunk = *chunks_.back();
      size_t take = std::min(static_cast<size_t>(chunk_bytes_) - chunk.size(), n);
      chunk.append(data, take);
      received_ += take;
      data += take;
      n -= take;
      const bool full = chunk.size() == chunk_bytes_;
      // Waking every reader per 4 KiB read costs more than the bytes: wake
      // them per 64 KiB and at each chunk's end (and at commit or failure).
      if (received_ - notified_ >= 64 * 1024 || full) {
        notified_ = received_;
        cv_.notify_all();
      }
      if (full) {
        ++complete_;
        if (writer.inline_mode()) {
          WriteOne(l);
          if (!write_error_.ok()) {
            write_error = write_error_;
            return false;
          }
        } else {
          writer_cv_.notify_all();
        }
      }
    }
    return true;
  };
  auto r = client->Stream(req, on_headers, on_data);
  if (!write_error.ok()) return fail(write_error);
  if (!answer.ok()) return fail(answer);
  if (!r.ok()) return fail(r.status());
  if (r->status != 200) return fail(oci::UpstreamHttpError(r->status, "blob " + digest_.ToString() + " in " + repo));
  uint64_t received;
  int64_t size;
  {
    std::lock_guard<std::mutex> l(mu_);
    received = received_;
    size = size_;
  }
  if (size >= 0 && received != static_cast<uint64_t>(size)) {
    return fail(Status::SizeInvalid("upstream sent " + std::to_string(received) + " bytes of " +
                                    digest_.ToString() + ", Content-Length said " + std::to_string(size)));
  }
  oci::Digest got = hasher->Finish();
  if (got != digest_) {
    return fail(Status::DigestInvalid("upstream sent bytes for " + digest_.ToString() + " whose digest is " +
                                      got.ToString() + "; dropped, not cached"));
  }
  {
    // The bytes are proven: readers may finish (from the window, or the store
    // behind it) while the writer and the commit make them durable.
    std::lock_guard<std::mutex> l(mu_);
    verified_ = true;
    cv_.notify_all();
  }
  Status st = writer.Drain();
  if (!st.ok()) return Fail(st);
  std::shared_ptr<std::string> last;
  uint64_t last_index;
  {
    std::lock_guard<std::mutex> l(mu_);
    last_index = complete_;
    if (!chunks_.empty() && chunks_.back()->size() < chunk_bytes_) last = chunks_.back();
  }
  st = store_->CommitBlob(digest_, last_index, last ? std::string_view(*last) : std::string_view(), received,
                          chunk_bytes_);
  if (!st.ok()) return Fail(st);
  std::lock_guard<std::mutex> l(mu_);
  committed_ = true;
  // Every chunk is in the store now: readers read there, and the window's memory goes.
  chunks_.clear();
  first_ = last_index + 1;
  ReturnBorrowed();
  cv_.notify_all();
}

FetchTable::FetchTable(std::shared_ptr<Store> store, uint64_t chunk_bytes, size_t max_inflight, FetchWindow window)
    : store_(std::move(store)), chunk_bytes_(chunk_bytes), max_inflight_(max_inflight), window_(window) {}

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
    if (held_.count(d)) return Status::TooManyRequests("blob " + d.ToString() + " is being removed; retry shortly");
    // Under mu_: no other fetch of `d` can commit between this look and BeginBlob.
    PC_ASSIGN_OR_RETURN(auto meta, store_->GetBlobMeta(d));
    if (meta && meta->complete) return Status::AlreadyExists("blob " + d.ToString() + " is cached");
    fetch = std::make_shared<BlobFetch>(d, store_, chunk_bytes_, window_, pool_);
    if (before_write_) fetch->set_before_write_for_test(before_write_);
    running_[d] = fetch;
    ++threads_;
    *started = true;
  }
  auto forget = [this](const std::shared_ptr<BlobFetch>& f) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = running_.find(f->digest());
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
      // would destroy them on this thread meanwhile (an abort at exit).
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
  return fetch;
}

size_t FetchTable::inflight() const {
  std::lock_guard<std::mutex> l(mu_);
  return running_.size();
}

std::optional<FetchTable::Hold> FetchTable::HoldIdle(const oci::Digest& d) {
  std::lock_guard<std::mutex> l(mu_);
  if (running_.count(d)) return std::nullopt;
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
  return running_.count(d) > 0;
}

bool FetchTable::WaitIdle(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> l(mu_);
  return idle_cv_.wait_until(l, deadline, [&] { return threads_ == 0; });
}

}  // namespace portcullis::proxy
