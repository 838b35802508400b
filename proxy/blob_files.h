// Layer bytes on disk: one plain file per blob, under
// <data dir>/blobs/<algorithm>/<first two hex digits>/<hex>, written chunk by
// chunk at the chunks' offsets and made durable once, at the commit.
//
// The store (store.h) decides what a file means: its RocksDB record says
// whether the blob is complete, and a file without a record (a crash between
// the two, or a drop cut short) is deleted by Sweep when the store opens. A
// file is never served on its own say.
//
// Why not RocksDB, as the chunks were before: every layer byte went through
// the memtable (two copies), a flush (a third copy and a CRC32c) and an fsync
// per 16 MiB flush, on the CPU a cold pull shares with the upstream and the
// clients; a file takes one copy into the page cache and one fdatasync after
// the clients are served. bench/README.md, lever 10: one cold pull of a 200 MiB
// layer 0.42 s against 0.57 s on the bench VM.
//
// Thread-safe: any method on any thread. Writes of one blob are meant to come
// from one writer in order (the fetch's); a Remove while that writer writes
// makes its later writes fail (the file is closed and unlinked), never land in
// another blob. Never throws.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "oci/digest.h"
#include "oci/status.h"

namespace portcullis::proxy {

class BlobFiles {
 public:
  // Opens the folder `root` (created 0700 when missing). With `direct`, and
  // where the file system takes it (DirectWritesWork), writes whose memory,
  // length and offset are 4 KiB aligned (the fetch's full chunks) go around
  // the page cache with O_DIRECT; others are buffered.
  static StatusOr<std::unique_ptr<BlobFiles>> Open(const std::string& root, bool direct);
  // Closes the files still open for writing; their bytes stay on disk until
  // Remove or the next Sweep.
  ~BlobFiles();
  BlobFiles(const BlobFiles&) = delete;
  BlobFiles& operator=(const BlobFiles&) = delete;

  // Whether aligned writes use O_DIRECT (asked for, and the file system takes it).
  bool direct() const { return direct_; }
  // Whether the file of `d` is open for writing (between Create and Finish or Remove).
  bool IsOpen(const oci::Digest& d) const { return Writing(d) != nullptr; }
  // Where the bytes of `d` live.
  std::string PathOf(const oci::Digest& d) const;

  // Creates the file of `d` (emptying one left over) and keeps it open for
  // WriteChunk, which places chunk i at i * chunk_bytes (chunk_bytes > 0).
  Status Create(const oci::Digest& d, uint64_t chunk_bytes);
  // Writes chunk `index` (at most chunk_bytes; only the last may be shorter)
  // into the file Create opened. IO_ERROR on a failed or short write (a full
  // disk), or when no file of `d` is open; INVALID_ARGUMENT for a chunk larger
  // than its size.
  Status WriteChunk(const oci::Digest& d, uint64_t index, std::string_view data);
  // Makes the file durable (bytes, size and its name in its folder) and closes
  // it. IO_ERROR when that fails or the file does not hold exactly `size` bytes.
  Status Finish(const oci::Digest& d, uint64_t size);
  // Reads up to `n` bytes at `offset` into `buf` (the caller's, n bytes);
  // *got says how many (fewer only at the end of the file; 0 at or past it).
  // NOT_FOUND when there is no file of `d`.
  Status Read(const oci::Digest& d, uint64_t offset, char* buf, size_t n, size_t* got) const;
  // Closes (when open) and deletes the file of `d`; OK when there is none.
  Status Remove(const oci::Digest& d);
  // Deletes every file under the root whose blob `keep` does not want, and
  // every file whose path does not name a digest; *removed counts them.
  // Files open for writing are kept.
  Status Sweep(const std::function<bool(const oci::Digest&)>& keep, int* removed);

 private:
  struct Open_;  // a file being written: its buffered and O_DIRECT descriptors
  BlobFiles(std::string root, bool direct) : root_(std::move(root)), direct_(direct) {}
  std::shared_ptr<Open_> Writing(const oci::Digest& d) const;

  const std::string root_;
  const bool direct_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Open_>> writing_;  // by digest string
};

}  // namespace portcullis::proxy
