// In-flight blob fetches: one upstream GET per uncached blob, however many
// clients ask for it at once. Bytes flow upstream → SHA-256 → a bounded
// in-memory window of chunks → every reader as they arrive; a writer thread
// of the fetch puts the window's chunks into the store (the blob's file)
// behind it, so readers do not wait for the disk. A chunk leaves the
// window once it is in the store and the window holds more than its keep
// size; a reader behind the window reads that chunk from the store. When the
// writer falls `max_pending` chunks behind, the fetch borrows further chunks
// from a pool shared by every fetch of its FetchTable (`shared_chunks`), and
// waits for its writer once that is empty too. Bounded memory: per fetch
// keep + max_pending + 1 chunks, plus shared_chunks for all fetches together.
//
// The fetch runs on its own thread, so a reader that goes away does not stop
// it; when it ends, the digest decides: equal → readers may finish, and the
// blob is committed (visible to later requests) once the writer has put every
// chunk; different → every chunk is dropped and every reader fails before its
// last byte. Readers are never handed the last byte of their response before
// every byte arrived and matched the digest, so no client ever completes a
// body whose digest is wrong.
//
// Limits (review M6; FetchLimits): a total deadline per fetch and a size bound
// per blob, both ending the fetch as failed (nothing cached, readers fail
// before their last byte); a Content-Length over the bound is refused before
// BeginBlob. The bytes a fetch may still write (its Content-Length, or what it
// received so far plus a chunk) are reserved in the store's pending count, so
// that eviction under --cache-max-bytes makes room for them ahead of the disk.
// Fetches are keyed by (upstream, digest): clients of one upstream never join
// (nor wait on) another upstream's fetch. The store holds one record per
// digest, so while one fetch of a digest writes it, a fetch of the same digest
// from another upstream serves through: it writes nothing, its readers read
// from its window only, so it waits for the slowest of them (reader cursors,
// below; one that joins behind the window fails), and nothing is cached by it
// (the next request finds the first fetch's blob).
// Readers are counted (every pointer FetchTable::Join hands out is one); a
// fetch nobody reads any more goes on (the next client, or a prefetch, gains),
// but the table cancels it when a new fetch needs its slot.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <utility>
#include <optional>
#include <string>
#include <string_view>

#include "oci/digest.h"
#include "oci/http_client.h"
#include "oci/status.h"
#include "proxy/http_message.h"
#include "proxy/store.h"

namespace portcullis::proxy {

// The window's bounds, in chunks (see above). With the default 1 MiB chunks:
// 7 MiB per fetch, and 64 MiB shared by all fetches.
struct FetchWindow {
  size_t keep_chunks = 2;     // chunks kept in memory after they are in the store
  size_t max_pending = 4;     // complete chunks not yet in the store, without borrowing
  size_t shared_chunks = 64;  // the pool (per FetchTable) a fetch borrows from beyond max_pending
};

// Bounds on one fetch (review M6). Zero: no bound.
struct FetchLimits {
  std::chrono::milliseconds deadline{0};  // headers to last byte; past it the fetch fails
  uint64_t max_blob_bytes = 0;            // larger: LIMIT_EXCEEDED, nothing kept
};

class BlobFetch {
 public:
  // `pool` counts the chunks borrowed from the shared pool by every fetch
  // (null: none can be borrowed).
  BlobFetch(oci::Digest digest, std::shared_ptr<Store> store, uint64_t chunk_bytes, FetchWindow window = {},
            std::shared_ptr<std::atomic<size_t>> pool = nullptr, FetchLimits limits = {});
  ~BlobFetch();

  const oci::Digest& digest() const { return digest_; }

  // Blocks until the upstream answered (or `timeout` passed). OK: *size holds
  // the Content-Length (-1 when the upstream did not send one). Otherwise the
  // error the upstream answer maps to (BLOB_UNKNOWN for 404, ...).
  Status WaitForHeaders(std::chrono::milliseconds timeout, int64_t* size);

  enum class ReadResult { kData, kEnd, kTimeout, kFailed };
  // Appends to *out up to `max` bytes starting at `offset`, waiting up to `wait`
  // for them. Bytes at or after `hold_at` are withheld until every byte has
  // arrived and matched the digest (before the store commit, which only makes
  // them durable). kEnd: the blob is verified and `offset` is at its end.
  ReadResult Read(uint64_t offset, size_t max, uint64_t hold_at, std::string* out,
                  std::chrono::milliseconds wait);
  // The same without a copy: *out (empty on entry) shares the window's chunk,
  // or a chunk read from the store, and keeps it alive. The bytes it shows
  // below the limit read are never modified again.
  ReadResult ReadPiece(uint64_t offset, size_t max, uint64_t hold_at, BodyPiece* out,
                       std::chrono::milliseconds wait);

  // Reader cursors. Serving through, the window is all a reader has (nothing
  // is in the store): a chunk leaves it only once every cursor is past it, and
  // the fetch waits for its slowest reader at the window's bound
  // (keep_chunks + max_pending chunks and the one being filled) instead of
  // cutting that reader off. AddCursor returns an id (never 0) for a reader at
  // `offset`; MoveCursor records that it read up to `offset`; RemoveCursor when
  // it is gone. Otherwise cursors change nothing (readers behind the window
  // read the store). Thread-safe. A reader that stops reading holds the fetch
  // until the engine cuts its connection (the minimum send rate) or the
  // fetch's deadline.
  uint64_t AddCursor(uint64_t offset);
  void MoveCursor(uint64_t id, uint64_t offset);
  void RemoveCursor(uint64_t id);

  bool committed() const;
  bool failed() const;
  // Ends the fetch as failed with `why` (its upstream connection is shut down,
  // what it wrote is dropped, its readers fail). False, doing nothing, once the
  // bytes are verified, the fetch failed, or it was cancelled already.
  bool Cancel(Status why);
  bool cancelled() const;
  // Writes nothing (see above); set by FetchTable before the fetch starts.
  bool serve_through() const { return serve_through_; }
  // Readers holding this fetch (pointers from FetchTable::Join), and since when
  // none does (steady clock; meaningful when readers() == 0).
  int readers() const { return readers_.load(); }
  std::chrono::steady_clock::time_point idle_since() const;
  // Blocks until the fetch committed or failed, up to `timeout`; true when
  // committed (a serve-through fetch: when every byte arrived and matched).
  bool WaitDone(std::chrono::milliseconds timeout);
  uint64_t size_committed() const;
  Status failure() const;

  // Runs the fetch to its end (called on the fetch thread). `on_done` is called
  // once at the end with the outcome. Never throws: an exception inside ends
  // the fetch as failed (INTERNAL).
  void Run(oci::RegistryClient* client, const std::string& repo);

  // For tests: chunks [0, n) are in the store; the window starts at chunk first.
  uint64_t stored_chunks_for_test() const;
  uint64_t window_first_for_test() const;
  // For tests: called on the writer before each chunk goes into the store
  // (set before Run; a test blocks it to hold the store behind the readers).
  void set_before_write_for_test(std::function<void(uint64_t index)> f) { before_write_ = std::move(f); }
  // Called (on the fetch thread, no lock held) each time the fetch reserves
  // more pending bytes in the store: lets eviction run early. Set before Run.
  void set_on_reserve(std::function<void()> f) { on_reserve_ = std::move(f); }

 private:
  friend class FetchTable;
  void ReaderJoined() { ++readers_; }
  Status DeadlineStatus() const;
  Status TooLarge(const std::string& what) const;
  void ReaderLeft();
  // Grows the pending reservation to `bytes` (under mu_); true when it grew.
  bool ReserveLocked(uint64_t bytes);
  class Writer;
  void Fetch(oci::RegistryClient* client, const std::string& repo);
  void Fail(Status st);
  // Puts complete chunks into the store until told to stop (the writer thread,
  // or inline when no thread could be started). Returns when stop_ is set and
  // nothing is left, or on a write error (recorded in write_error_).
  void WriteLoop();
  // Puts the next complete chunk, if any, into the store; false when none was waiting.
  bool WriteOne(std::unique_lock<std::mutex>& l);
  // Room for one more chunk: under max_pending, or one borrowed from the pool;
  // serving through, also the window under its bound once readers let go.
  bool RoomForChunk();
  // Lets stored chunks beyond KeptChunks() leave the window (serving through,
  // only those every cursor is past).
  void PruneLocked();
  // The chunks the window keeps: keep_chunks, and serving through (the window is
  // all a reader has) max_pending more; then the fetch waits for its readers.
  size_t KeptChunks() const { return window_.keep_chunks + (serve_through_ ? window_.max_pending : 0); }
  void ReturnBorrowed();  // every borrowed chunk back to the pool (under mu_)

  const oci::Digest digest_;
  const std::shared_ptr<Store> store_;
  const uint64_t chunk_bytes_;
  const FetchWindow window_;
  const std::shared_ptr<std::atomic<size_t>> pool_;
  const FetchLimits limits_;
  const std::chrono::steady_clock::time_point deadline_;  // max() when none
  const std::shared_ptr<oci::StreamCancel> cancel_ = std::make_shared<oci::StreamCancel>();
  std::function<void(uint64_t)> before_write_;
  std::function<void()> on_reserve_;
  std::atomic<int> readers_{0};
  bool serve_through_ = false;  // set before Run, constant after
  std::atomic<int64_t> idle_since_ns_{0};

  mutable std::mutex mu_;
  std::condition_variable cv_;         // readers, WaitForHeaders, WaitDone
  std::condition_variable writer_cv_;  // the writer (work or stop) and the fetch (room)
  bool headers_ = false;
  int64_t size_ = -1;
  uint64_t received_ = 0;
  uint64_t notified_ = 0;      // received_ when readers were last woken
  // One chunk of the window: the first `size` of its chunk_bytes_ bytes are
  // filled (under mu_); bytes once counted in `size` are never modified.
  // `aligned`: its memory is 4 KiB aligned, so that a full chunk can go to
  // the blob's file with O_DIRECT (when the store writes so). Not otherwise:
  // glibc reuses freed aligned blocks less well (a cold 200 MiB pull took
  // 25,000-41,000 page faults with them against 6,700-18,000; bench/README.md, lever 10).
  struct WindowChunk {
    static constexpr std::align_val_t kAlign{4096};
    struct Free {
      bool aligned = false;
      void operator()(char* p) const {
        if (aligned) {
          ::operator delete[](p, kAlign);
        } else {
          delete[] p;
        }
      }
    };
    WindowChunk(uint64_t capacity, bool aligned)
        : bytes(aligned ? static_cast<char*>(::operator new[](capacity, kAlign)) : new char[capacity], Free{aligned}) {}
    std::unique_ptr<char[], Free> bytes;
    uint64_t size = 0;
    std::string_view view() const { return {bytes.get(), static_cast<size_t>(size)}; }
  };
  // Chunks [first_, first_ + chunks_.size()) are in memory; the last one may be
  // partial (being filled). Complete chunks are never modified again.
  std::deque<std::shared_ptr<WindowChunk>> chunks_;
  uint64_t first_ = 0;
  std::map<uint64_t, uint64_t> cursors_;  // id → offset read up to
  uint64_t next_cursor_ = 1;
  uint64_t complete_ = 0;      // chunks [0, complete_) are complete
  uint64_t stored_ = 0;        // chunks [0, stored_) are in the store
  size_t borrowed_ = 0;        // chunks borrowed from the pool (returned as chunks are stored)
  bool stop_ = false;          // the writer stops once stored_ == complete_
  Status write_error_;
  std::atomic<bool> began_{false};  // BeginBlob succeeded: Fail drops what was written
  bool verified_ = false;  // every byte arrived and matched the digest
  bool committed_ = false;
  bool failed_ = false;
  Status failure_;
  Status cancel_reason_;    // set by Cancel (or the deadline); the fetch fails with it
  uint64_t reserved_ = 0;   // bytes reserved in the store's pending count
};

// The table of running fetches, bounded in size.
class FetchTable {
 public:
  FetchTable(std::shared_ptr<Store> store, uint64_t chunk_bytes, size_t max_inflight, FetchWindow window = {},
             FetchLimits limits = {});

  // Returns the running fetch of `d` from `upstream` (joining it) or starts
  // one through `client` for `repo`; a start while another upstream's fetch
  // of `d` writes it makes a serve-through fetch (above). `*started` says which. The pointer returned counts as
  // a reader of the fetch until it and every copy of it are gone. When
  // `max_inflight` fetches run, a start cancels the one that has had no reader
  // for the longest (review M6: clients that hang up must not hold every slot);
  // TOOMANYREQUESTS when every running fetch has a reader, when `d`'s fetch is
  // being cancelled, or when `d` is held (below). ALREADY_EXISTS when `d` is complete in
  // the store (an earlier fetch committed it after the caller looked): serve
  // it from there; a second fetch never rewrites a complete blob (review L2).
  // The fetch's thread holds `client` alive.
  StatusOr<std::shared_ptr<BlobFetch>> Join(const std::string& upstream, const oci::Digest& d,
                                            std::shared_ptr<oci::RegistryClient> client, const std::string& repo,
                                            bool* started, const std::function<void(const BlobFetch&)>& on_done);
  // The same, for one unnamed upstream (tests).
  StatusOr<std::shared_ptr<BlobFetch>> Join(const oci::Digest& d, std::shared_ptr<oci::RegistryClient> client,
                                            const std::string& repo, bool* started,
                                            const std::function<void(const BlobFetch&)>& on_done) {
    return Join("", d, std::move(client), repo, started, on_done);
  }

  size_t inflight() const;
  // Whether a fetch of `d` runs, from any upstream.
  bool Running(const oci::Digest& d) const;

  // While a Hold of `d` lives, no fetch of `d` starts (Join answers
  // TOOMANYREQUESTS): for whoever drops `d` from the store (purge, eviction,
  // garbage collection), so that no fetch writes chunks the drop then deletes
  // (review L2). Must not outlive the table.
  class Hold {
   public:
    Hold(FetchTable* table, oci::Digest d) : table_(table), d_(std::move(d)) {}
    Hold(Hold&& o) noexcept : table_(std::exchange(o.table_, nullptr)), d_(o.d_) {}
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;
    Hold& operator=(Hold&&) = delete;
    ~Hold();

   private:
    FetchTable* table_;
    oci::Digest d_;
  };
  // A Hold of `d`, or nullopt when a fetch of `d` is running now.
  std::optional<Hold> HoldIdle(const oci::Digest& d);
  // Waits until no fetch runs, up to `deadline`. True when idle.
  bool WaitIdle(std::chrono::steady_clock::time_point deadline);

  // Starts a fetch's body on a new thread (default: a detached std::thread).
  // Tests replace it to make thread creation fail (std::system_error), after
  // which Join answers UPSTREAM_UNAVAILABLE and the slot is free again.
  using Spawner = std::function<void(std::function<void()> body)>;
  void set_spawner_for_test(Spawner s) { spawner_ = std::move(s); }
  // Chunks borrowed from the shared pool by running fetches.
  size_t pool_used() const { return pool_->load(); }
  // Given to every fetch this starts (BlobFetch::set_before_write_for_test).
  void set_before_write_for_test(std::function<void(uint64_t index)> f) { before_write_ = std::move(f); }
  // Given to every fetch this starts (BlobFetch::set_on_reserve); set before the first Join.
  void set_on_reserve(std::function<void()> f) { on_reserve_ = std::move(f); }
  // Fetches cancelled to free a slot for another.
  std::atomic<uint64_t> cancelled_abandoned{0};

 private:
  // A pointer to `f` that counts as one reader while it (or a copy) lives.
  static std::shared_ptr<BlobFetch> WithReader(const std::shared_ptr<BlobFetch>& f);
  // Under mu_: fetches holding a slot (running: not cancelled, failed or committed).
  size_t ActiveLocked() const;
  // Under mu_: cancels the fetch without readers idle longest; false when none.
  bool CancelOldestAbandonedLocked();

  const std::shared_ptr<Store> store_;
  const uint64_t chunk_bytes_;
  const size_t max_inflight_;
  const FetchWindow window_;
  const FetchLimits limits_;
  std::function<void()> on_reserve_;
  const std::shared_ptr<std::atomic<size_t>> pool_ = std::make_shared<std::atomic<size_t>>(0);
  mutable std::mutex mu_;
  std::condition_variable idle_cv_;
  // By (digest, upstream name): a digest's fetches are adjacent.
  using Key = std::pair<oci::Digest, std::string>;
  std::map<Key, std::shared_ptr<BlobFetch>> running_;
  std::map<oci::Digest, int> held_;  // Holds alive, by digest
  size_t threads_ = 0;  // fetch threads not yet finished (on_done included)
  Spawner spawner_;
  std::function<void(uint64_t)> before_write_;
};

}  // namespace portcullis::proxy
