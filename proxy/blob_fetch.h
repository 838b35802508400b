// In-flight blob fetches: one upstream GET per uncached blob, however many
// clients ask for it at once. Bytes flow upstream → SHA-256 → RocksDB chunks
// → every reader as they arrive. The fetch runs on its own thread, so a reader
// that goes away does not stop it; when it ends, the digest decides: equal →
// the blob is committed (visible to later requests); different → every chunk is
// dropped and every reader fails before its last byte.
//
// Readers are never handed the last byte of their response before the fetch
// has committed, so no client ever completes a body whose digest is wrong.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "oci/digest.h"
#include "oci/http_client.h"
#include "oci/status.h"
#include "proxy/store.h"

namespace portcullis::proxy {

class BlobFetch {
 public:
  BlobFetch(oci::Digest digest, std::shared_ptr<Store> store, uint64_t chunk_bytes);

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

  bool committed() const;
  bool failed() const;
  // Blocks until the fetch committed or failed, up to `timeout`; true when committed.
  bool WaitDone(std::chrono::milliseconds timeout);
  uint64_t size_committed() const;
  Status failure() const;

  // Runs the fetch to its end (called on the fetch thread). `on_done` is called
  // once at the end with the outcome. Never throws: an exception inside ends
  // the fetch as failed (INTERNAL).
  void Run(oci::RegistryClient* client, const std::string& repo);

 private:
  friend class FetchTable;
  void Fetch(oci::RegistryClient* client, const std::string& repo);
  void Fail(Status st);

  const oci::Digest digest_;
  const std::shared_ptr<Store> store_;
  const uint64_t chunk_bytes_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool headers_ = false;
  int64_t size_ = -1;
  uint64_t received_ = 0;
  uint64_t notified_ = 0;  // received_ when readers were last woken
  uint64_t flushed_chunks_ = 0;  // chunks [0, flushed_chunks_) are in the store
  std::string buffer_;           // bytes from flushed_chunks_ * chunk_bytes_ on
  bool verified_ = false;  // every byte arrived and matched the digest
  bool committed_ = false;
  bool failed_ = false;
  Status failure_;
};

// The table of running fetches, bounded in size.
class FetchTable {
 public:
  FetchTable(std::shared_ptr<Store> store, uint64_t chunk_bytes, size_t max_inflight);

  // Returns the running fetch of `d` (joining it) or starts one through
  // `client` for `repo`. `*started` says which. TOOMANYREQUESTS when the bound
  // is reached. The fetch's thread holds `client` alive via `keep`.
  StatusOr<std::shared_ptr<BlobFetch>> Join(const oci::Digest& d, std::shared_ptr<oci::RegistryClient> client,
                                            const std::string& repo, bool* started,
                                            const std::function<void(const BlobFetch&)>& on_done);

  size_t inflight() const;
  bool Running(const oci::Digest& d) const;
  // Waits until no fetch runs, up to `deadline`. True when idle.
  bool WaitIdle(std::chrono::steady_clock::time_point deadline);

  // Starts a fetch's body on a new thread (default: a detached std::thread).
  // Tests replace it to make thread creation fail (std::system_error), after
  // which Join answers UPSTREAM_UNAVAILABLE and the slot is free again.
  using Spawner = std::function<void(std::function<void()> body)>;
  void set_spawner_for_test(Spawner s) { spawner_ = std::move(s); }

 private:
  const std::shared_ptr<Store> store_;
  const uint64_t chunk_bytes_;
  const size_t max_inflight_;
  mutable std::mutex mu_;
  std::condition_variable idle_cv_;
  std::map<oci::Digest, std::shared_ptr<BlobFetch>> running_;
  size_t threads_ = 0;  // fetch threads not yet finished (on_done included)
  Spawner spawner_;
};

}  // namespace portcullis::proxy
