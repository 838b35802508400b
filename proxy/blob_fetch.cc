#include "proxy/blob_fetch.h"

#include <malloc.h>

#include <algorithm>
#include <cstring>
#include <system_error>
#include <thread>

#include "oci/errors.h"
#include "proxy/upstream.h"

namespace portcullis::proxy {

using namespace std::chrono_literals;

namespace {
std::chrono::steady_clock::time_point DeadlineAfter(std::chrono::milliseconds d) {
  if (d.count() <= 0) return std::chrono::steady_clock::time_point::max();
  return std::chrono::steady_clock::now() + d;
}
}  // namespace

BlobFetch::BlobFetch(oci::Digest digest, std::shared_ptr<Store> store, uint64_t chunk_bytes, FetchWindow window,
                     std::shared_ptr<std::atomic<size_t>> pool, FetchLimits limits)
    : digest_(std::move(digest)),
      store_(std::move(store)),
      chunk_bytes_(chunk_bytes),
      window_(window),
      pool_(std::move(pool)),
      limits_(limits),
      deadline_(DeadlineAfter(limits.deadline)) {
  idle_since_ns_ = std::chrono::steady_clock::now().time_since_epoch().count();
}

BlobFetch::~BlobFetch() {
  std::lock_guard<std::mutex> l(mu_);
  ReturnBorrowed();
  if (reserved_ > 0) store_->ReleasePending(reserved_);
}

void BlobFetch::ReaderLeft() {
  idle_since_ns_ = std::chrono::steady_clock::now().time_since_epoch().count();
  --readers_;
}

std::chrono::steady_clock::time_point BlobFetch::idle_since() const {
  return std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(idle_since_ns_.load()));
}

bool BlobFetch::ReserveLocked(uint64_t bytes) {
  if (bytes <= reserved_) return false;
  store_->ReservePending(bytes - reserved_);
  reserved_ = bytes;
  return true;
}

bool BlobFetch::Cancel(Status why) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (verified_ || failed_ || !cancel_reason_.ok()) return false;
    cancel_reason_ = std::move(why);
    writer_cv_.notify_all();
  }
  cancel_->Cancel();  // the fetch thread's read fails now; it then fails the fetch
  return true;
}

Status BlobFetch::DeadlineStatus() const {
  const int64_t ms = limits_.deadline.count();
  return Status::UpstreamUnavailable("fetch of " + digest_.ToString() + " did not finish within its deadline of " +
                                     (ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms") +
                                     " (fetch_deadline); dropped, not cached");
}

Status BlobFetch::TooLarge(const std::string& what) const {
  return Status::LimitExceeded("blob " + digest_.ToString() + " is larger than the proxy's bound of " +
                               std::to_string(limits_.max_blob_bytes) + " bytes (max_blob_bytes): upstream sent " +
                               what + "; not cached");
}

bool BlobFetch::cancelled() const {
  std::lock_guard<std::mutex> l(mu_);
  return !cancel_reason_.ok();
}

void BlobFetch::ReturnBorrowed() {
  if (borrowed_ > 0 && pool_) pool_->fetch_sub(borrowed_);
  borrowed_ = 0;
}

bool BlobFetch::RoomForChunk() {
  if (serve_through_) {
    // Nothing goes to the store: only readers moving on make room.
    PruneLocked();
    if (chunks_.size() > KeptChunks()) return false;
  }
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
  const bool through = serve_through_;
  cv_.wait_for(l, timeout, [&] { return committed_ || failed_ || (through && verified_); });
  return committed_ || (through && verified_ && !failed_);
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
  BodyPiece piece;
  const ReadResult r = ReadPiece(offset, max, hold_at, &piece, wait);
  if (r == ReadResult::kData) out->append(piece.data, piece.size);
  return r;
}

BlobFetch::ReadResult BlobFetch::ReadPiece(uint64_t offset, size_t max, uint64_t hold_at, BodyPiece* out,
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
    // only filled further, past its size, and never reused), so the reader may
    // use them after the lock while the piece keeps the chunk alive.
    std::shared_ptr<WindowChunk> chunk = chunks_[static_cast<size_t>(index - first_)];
    l.unlock();
    const uint64_t n = std::min<uint64_t>({chunk_bytes_ - in_chunk, lim - offset, max});
    out->data = chunk->bytes.get() + in_chunk;
    out->size = static_cast<size_t>(n);
    out->owner = std::move(chunk);
    return ReadResult::kData;
  }
  // Behind the window (a slow reader, or the window freed at commit): only
  // chunks already in the store leave the window, so read it there. Not so
  // when serving through: the store's chunks of this digest are another
  // fetch's, from another upstream, not yet proven.
  if (serve_through_) return ReadResult::kFailed;
  l.unlock();
  auto chunk = std::make_shared<rocksdb::PinnableSlice>();
  if (!store_->ReadChunk(digest_, index, chunk.get()).ok() || chunk->size() <= in_chunk) return ReadResult::kFailed;
  uint64_t n = std::min<uint64_t>({chunk->size() - in_chunk, lim - offset, max});
  out->data = chunk->data() + in_chunk;
  out->size = static_cast<size_t>(n);
  out->owner = std::move(chunk);
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
  std::shared_ptr<WindowChunk> chunk = chunks_[static_cast<size_t>(index - first_)];
  l.unlock();
  if (before_write_) before_write_(index);
  Status st = serve_through_ ? Status::Ok() : store_->PutChunk(digest_, index, chunk->view());
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
  PruneLocked();
  writer_cv_.notify_all();
  return true;
}

void BlobFetch::PruneLocked() {
  // Serving through, no chunk a reader has yet to read leaves either. A reader
  // already behind the window (it joined late) fails at its next read and holds nothing.
  const size_t keep = KeptChunks();
  uint64_t slowest = UINT64_MAX;
  if (serve_through_) {
    for (const auto& [id, offset] : cursors_) {
      if (offset >= first_ * chunk_bytes_) slowest = std::min(slowest, offset);
    }
  }
  while (chunks_.size() > keep && first_ < stored_ && (first_ + 1) * chunk_bytes_ <= slowest) {
    chunks_.pop_front();
    ++first_;
  }
}

uint64_t BlobFetch::AddCursor(uint64_t offset) {
  std::lock_guard<std::mutex> l(mu_);
  const uint64_t id = next_cursor_++;
  cursors_[id] = offset;
  return id;
}

void BlobFetch::MoveCursor(uint64_t id, uint64_t offset) {
  // Called per piece a reader takes: only a fetch serving through needs it
  // (serve_through_ is set before Run and constant after).
  if (!serve_through_) return;
  std::lock_guard<std::mutex> l(mu_);
  auto it = cursors_.find(id);
  if (it == cursors_.end() || offset <= it->second) return;
  it->second = offset;
  writer_cv_.notify_all();  // the fetch may wait for room
}

void BlobFetch::RemoveCursor(uint64_t id) {
  std::lock_guard<std::mutex> l(mu_);
  if (cursors_.erase(id) > 0 && serve_through_) writer_cv_.notify_all();
}

void BlobFetch::WriteLoop() {
  std::unique_lock<std::mutex> l(mu_);
  try {
    for (;;) {
      if (WriteOne(l)) continue;
      if (!write_error_.ok() || stop_) return;
      // The writer also keeps the fetch's deadline: a fetch blocked in an
      // upstream read (a trickling body) is cancelled from here.
      if (deadline_ == std::chrono::steady_clock::time_point::max() || verified_ || !cancel_reason_.ok()) {
        writer_cv_.wait(l);
      } else if (writer_cv_.wait_until(l, deadline_) == std::cv_status::timeout && !verified_ &&
                 cancel_reason_.ok()) {
        l.unlock();
        Cancel(DeadlineStatus());
        l.lock();
      }
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
  {
    // Committed (counted as a complete blob now) or dropped: nothing is pending any more.
    std::lock_guard<std::mutex> l(mu_);
    if (reserved_ > 0) store_->ReleasePending(reserved_);
    reserved_ = 0;
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
  oci::HttpRequest req = upstream::BlobGet(repo, digest_);
  req.cancel = cancel_;
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
    if (limits_.max_blob_bytes > 0 && size > 0 && static_cast<uint64_t>(size) > limits_.max_blob_bytes) {
      // Refused before BeginBlob: nothing of it is ever written.
      answer = TooLarge(std::to_string(size) + " bytes (its Content-Length)");
      return false;
    }
    if (!serve_through_) {
      {
        std::lock_guard<std::mutex> l(mu_);
        if (size > 0) ReserveLocked(static_cast<uint64_t>(size));
      }
      if (size > 0 && on_reserve_) on_reserve_();
      Status st = store_->BeginBlob(digest_, chunk_bytes_);
      if (!st.ok()) {
        write_error = st;
        return false;
      }
      began_ = true;
    }
    std::lock_guard<std::mutex> l(mu_);
    headers_ = true;
    size_ = size;
    cv_.notify_all();
    return true;
  };
  // Under mu_: makes sure the last chunk has room, adding one when it is full
  // (or there is none) once the writer is less than max_pending chunks
  // behind, or the pool lends one (another fetch's return does not wake this
  // one: look again every 5 ms). False when the fetch must stop.
  auto room_locked = [&](std::unique_lock<std::mutex>& l) {
    if (!chunks_.empty() && chunks_.back()->size < chunk_bytes_) return true;
    while (write_error_.ok() && cancel_reason_.ok() && !RoomForChunk()) {
      if (std::chrono::steady_clock::now() >= deadline_) cancel_reason_ = DeadlineStatus();  // a stuck writer
      writer_cv_.wait_for(l, 5ms);
    }
    if (!cancel_reason_.ok()) return false;
    if (!write_error_.ok()) {
      write_error = write_error_;
      return false;
    }
    chunks_.push_back(std::make_shared<WindowChunk>(chunk_bytes_, store_->direct_files()));
    return true;
  };
  // The transport reads a body with a Content-Length straight into the last
  // chunk's free tail (no copy), then hands those bytes to on_data in place.
  // Readers never see past received_, so the tail is the fetch's alone; the
  // chunk is held here until on_data took the bytes.
  std::shared_ptr<WindowChunk> reading_into;
  req.body_space = [&]() -> std::pair<char*, size_t> {
    std::unique_lock<std::mutex> l(mu_);
    if (!cancel_reason_.ok() || !room_locked(l)) return {nullptr, 0};
    reading_into = chunks_.back();
    return {reading_into->bytes.get() + reading_into->size, static_cast<size_t>(chunk_bytes_ - reading_into->size)};
  };
  auto on_data = [&](const char* data, size_t n) {
    hasher->Update(data, n);
    std::unique_lock<std::mutex> l(mu_);
    if (!cancel_reason_.ok()) return false;
    if (std::chrono::steady_clock::now() >= deadline_) {  // the writer's watch, when it has no thread
      cancel_reason_ = DeadlineStatus();
      return false;
    }
    if (limits_.max_blob_bytes > 0 && received_ + n > limits_.max_blob_bytes) {
      write_error = TooLarge("more than " + std::to_string(received_ + n - 1) + " bytes (a body longer than announced)");
      return false;
    }
    if (!serve_through_ && received_ + n > reserved_ && ReserveLocked(received_ + n + chunk_bytes_) && on_reserve_) {
      l.unlock();  // a body without (or beyond) a Content-Length: reserve as it comes, a chunk ahead
      on_reserve_();
      l.lock();
    }
    while (n > 0) {
      if (!room_locked(l)) return false;
      WindowChunk& chunk = *chunks_.back();
      char* const tail = chunk.bytes.get() + chunk.size;
      const size_t take = std::min(static_cast<size_t>(chunk_bytes_ - chunk.size), n);
      if (data != tail) std::memcpy(tail, data, take);  // else read in place (body_space)
      chunk.size += take;
      received_ += take;
      data += take;
      n -= take;
      const bool full = chunk.size == chunk_bytes_;
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
  {
    std::unique_lock<std::mutex> l(mu_);
    if (!cancel_reason_.ok()) {
      Status why = cancel_reason_;
      l.unlock();
      return fail(why);
    }
  }
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
  if (serve_through_) return;  // verified, readers finish from the window; nothing to commit
  std::shared_ptr<WindowChunk> last;
  uint64_t last_index;
  {
    std::lock_guard<std::mutex> l(mu_);
    last_index = complete_;
    if (!chunks_.empty() && chunks_.back()->size < chunk_bytes_) last = chunks_.back();
  }
  st = store_->CommitBlob(digest_, last_index, last ? last->view() : std::string_view(), received,
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

}  // namespace portcullis::proxy
