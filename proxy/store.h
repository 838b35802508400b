// The cache: in RocksDB manifests by digest, tag → digest records, repository
// links and blob records; layer bytes in a file per blob (BlobFiles) under
// <dir>/blobs, written in chunks.
//
// Column families:
//   blob_chunks  <digest> '/' <u64 big-endian index>  → chunk bytes (integrated BlobDB):
//                blobs cached by versions before the blob files, still read and dropped
//   blob_meta    <digest>                             → BlobMeta (pending or complete; file or chunks)
//   manifests    <digest>                             → media type '\n' bytes
//   tags         <upstream>/<repo>:<tag>              → TagRecord
//   links        <upstream>/<repo> '@' <digest>       → "" (this repo is known to hold it)
//
// A blob is visible only when its meta says complete; that record is written
// (synced) after its file was made durable. A blob whose meta says pending at
// Open() was cut short (crash, kill -9) and is deleted then (its file, or its
// chunk range, compacted so its bytes leave the disk); so is a file that no
// record names (a crash between the file and its record).
//
// A full disk: writes fail with IO_ERROR (a blob file's write; RocksDB stops
// writing after a failed flush); reads go on. RocksDB's SstFileManager polls the free space every 5 s
// and resumes writing by itself once a write buffer's worth (16 MiB) is free
// (tests/integration/test_disk_full.sh). A blob whose fetch failed meanwhile
// stays pending (never served) until it is fetched again or the next Open.
//
// Thread-safe: RocksDB handles concurrency; the blob files keep their open
// writers under a mutex (BlobFiles); the rest of Store's state is atomic or
// under access_mu_.
#pragma once

#include <rocksdb/db.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "oci/digest.h"
#include "oci/status.h"
#include "proxy/blob_files.h"

namespace portcullis::proxy {

struct BlobMeta {
  bool complete = false;
  bool in_file = false;      // bytes in the blob's file; else chunks in RocksDB (older caches)
  uint64_t size = 0;
  uint64_t chunk_bytes = 0;  // chunk size this blob was written with
  int64_t created = 0;       // unix seconds
};

struct StoredManifest {
  std::string media_type;
  std::string bytes;
};

struct TagRecord {
  oci::Digest digest;
  int64_t fetched_at = 0;  // unix seconds of the last upstream confirmation
};

struct StoreStats {
  uint64_t blobs = 0;       // complete blobs
  uint64_t blob_bytes = 0;  // their total size
  uint64_t manifests = 0;
  uint64_t pending_bytes = 0;  // reserved by fetches in flight (ReservePending)
};

struct StoreOptions {
  // Layer bytes are written with O_DIRECT (full chunks into blob files, and
  // RocksDB's flushes), where the data dir's file system takes it (probed at
  // Open; else buffered). Off by default: buffered writes go through the page
  // cache, which takes a burst faster than most disks, so a cold pull does not
  // wait for the disk once the fetch window is used up. O_DIRECT saves the
  // kernel's copy of every layer byte (CPU) where the disk is faster than the
  // network. bench/README.md, levers 4 and 6.
  bool direct_writes = false;
  // New blobs go to files (BlobFiles). False: into RocksDB chunks, as versions
  // before the blob files did (tests make such caches with it).
  bool blob_files = true;
};

class Store {
 public:
  // Opens (creating) the database under `dir` and deletes every pending blob
  // (and compacts their chunk ranges, so their bytes leave the disk).
  // A `dir` this creates is made 0700 (owner only).
  // `*cleaned` receives how many pending blobs were removed.
  static StatusOr<std::unique_ptr<Store>> Open(const std::string& dir, int* cleaned,
                                                const StoreOptions& options = {});
  ~Store();
  Store(const Store&) = delete;
  // Whether RocksDB's flushes write with O_DIRECT (asked for, and the data
  // dir's file system takes it): read back from the options RocksDB runs with.
  bool direct_flush() const;
  // Whether full chunks go into blob files with O_DIRECT (the same ask and probe):
  // the fetch then gives them 4 KiB-aligned memory.
  bool direct_files() const { return files_->direct(); }
  Store& operator=(const Store&) = delete;

  // Manifests. Get returns nullopt when absent.
  StatusOr<std::optional<StoredManifest>> GetManifest(const oci::Digest& d);
  Status PutManifest(const oci::Digest& d, const StoredManifest& m);

  // Tags, keyed "<upstream>/<repo>:<tag>".
  StatusOr<std::optional<TagRecord>> GetTag(const std::string& key);
  Status PutTag(const std::string& key, const TagRecord& rec);
  Status DeleteTag(const std::string& key);

  // Links: repo "<upstream>/<repo>" is known to hold `d`.
  bool HasLink(const std::string& repo, const oci::Digest& d);

  // Reads that never wait for the disk, for callers on an event loop: from
  // RocksDB's memtables and block cache only (read_tier kBlockCacheTier).
  // nullopt (false) when the record is absent, unreadable or not in memory:
  // the caller then makes the blocking read (above) on a worker thread.
  std::optional<StoredManifest> PeekManifest(const oci::Digest& d);
  std::optional<TagRecord> PeekTag(const std::string& key);
  bool PeekLink(const std::string& repo, const oci::Digest& d);
  Status PutLinks(const std::string& repo, const std::vector<oci::Digest>& ds);

  // Blobs.
  StatusOr<std::optional<BlobMeta>> GetBlobMeta(const oci::Digest& d);
  // Records a pending blob (and creates its file); chunks may follow.
  // ALREADY_EXISTS (nothing written) when `d` is complete: a complete blob
  // never becomes pending again.
  Status BeginBlob(const oci::Digest& d, uint64_t chunk_bytes);
  // Writes chunk `index` (chunk_bytes long: only the last chunk, which
  // CommitBlob writes, may be shorter) into the blob's file, or into RocksDB
  // without the write-ahead log: not durable until CommitBlob. Readable by
  // ReadChunk at once.
  Status PutChunk(const oci::Digest& d, uint64_t index, std::string_view data);
  // Writes the last chunk (may be empty when size is a multiple of the chunk
  // size), makes the blob's bytes durable (the file's fdatasync; RocksDB
  // chunks: a flush), then writes the complete record, synced.
  Status CommitBlob(const oci::Digest& d, uint64_t last_index, std::string_view last_data, uint64_t size,
                    uint64_t chunk_bytes);
  // Deletes every chunk and the meta of `d`.
  Status DropBlob(const oci::Digest& d);
  // Counts kept up to date by the writers above (exact after Open).
  StoreStats Stats() const;
  // Bytes that fetches in flight may still write (their Content-Length, or what
  // they received so far): counted in Stats().pending_bytes so that eviction
  // under a cache bound makes room before the disk fills (review M6). In memory
  // only; each fetch releases what it reserved when it ends.
  void ReservePending(uint64_t bytes) { pending_bytes_ += bytes; }
  void ReleasePending(uint64_t bytes) { pending_bytes_ -= bytes; }

  // ---- Maintenance (store_maintenance.cc) ----
  // Last access of blobs, batched: Touch only records in memory (a write per
  // request would double the write load); FlushAccess writes the batch.
  void Touch(const oci::Digest& d);
  Status FlushAccess();
  int64_t LastAccess(const oci::Digest& d);  // 0 when never recorded

  // Records that manifest `m` needs each of `needed` (its blobs and children),
  // so that dropping a blob can drop the manifests that would be broken.
  Status PutRefs(const oci::Digest& m, const std::vector<oci::Digest>& needed);
  // Drops every manifest that needs `d` (transitively: indexes of those too)
  // and every tag naming one of them. Counts go to the out parameters.
  Status DropDependents(const oci::Digest& d, uint64_t* manifests, uint64_t* tags);
  Status DeleteManifest(const oci::Digest& d);

  struct BlobInfo {
    oci::Digest digest;
    uint64_t size = 0;
    uint64_t chunk_bytes = 0;
    int64_t created = 0;
    int64_t last_access = 0;
  };
  StatusOr<std::vector<BlobInfo>> ListBlobs();
  struct ManifestInfo {
    oci::Digest digest;
    std::string media_type;
    uint64_t size = 0;
  };
  StatusOr<std::vector<ManifestInfo>> ListManifests();
  // digest string → repos ("upstream/repo") that link it.
  StatusOr<std::map<std::string, std::vector<std::string>>> LinksByDigest();
  // digest string → tag keys ("upstream/repo:tag") naming it.
  StatusOr<std::map<std::string, std::vector<std::string>>> TagsByDigest();
  // Removes the links and tags of repo "upstream/repo"; counts what it removed.
  Status DeleteRepo(const std::string& repo, uint64_t* links, uint64_t* tags);
  // Removes every link and tag naming `d`.
  Status DeleteLinksTo(const oci::Digest& d, uint64_t* tags);
  // Lets RocksDB drop deleted chunks and the blob files nothing refers to.
  Status CompactChunks();

  // Readers of a blob pin it; eviction, gc and fsck leave pinned blobs alone
  // (StorePin below holds a pin for a scope).
  void Pin(const oci::Digest& d);
  void Unpin(const oci::Digest& d);
  bool Pinned(const oci::Digest& d);

  // ---- Trust-policy gate state ----
  // Opaque to the store: proxy/gate.cc builds the keys (policy version,
  // repository, digest, ...) and encodes the values (verdict, expiry).
  StatusOr<std::optional<std::string>> GetVerdict(const std::string& key);
  Status PutVerdict(const std::string& key, const std::string& value);
  // Marks of what passed the gate (blobs named by a passed manifest, children
  // of a passed index, blobs of signature artifacts): each key gets `value`,
  // in one write.
  Status PutGateMarks(const std::vector<std::string>& keys, const std::string& value);
  StatusOr<std::optional<std::string>> GetGateMark(const std::string& key);
  // Deletes every verdict and mark for which `drop(key, value)` is true (a scan
  // of both; for garbage collection after a policy change). Counts what it deleted.
  Status DropGateRecords(const std::function<bool(std::string_view key, std::string_view value)>& drop,
                         uint64_t* dropped);

  // Reads chunk `index` of `d` into `out` (NOT_FOUND when absent), from the
  // blob's file (pending or complete) or its RocksDB chunks. `verify`
  // re-checks RocksDB's block checksums of chunks there: off on the serving
  // path (the bytes were hashed against their digest on the way in), on for
  // fsck (which hashes every blob's bytes anyway).
  Status ReadChunk(const oci::Digest& d, uint64_t index, rocksdb::PinnableSlice* out, bool verify = false);

 private:
  Store() = default;
  Status CleanPending(int* cleaned);
  Status ReadFileChunk(const oci::Digest& d, const BlobMeta& meta, uint64_t index, rocksdb::PinnableSlice* out);
  // Compacts the chunk ranges of `dropped` blobs so their bytes leave the disk
  // (bounded: at most 16 ranges, else the whole chunk family once); best effort.
  void ReclaimDropped(const std::vector<oci::Digest>& dropped);

  std::atomic<uint64_t> blobs_{0}, blob_bytes_{0}, manifests_count_{0}, pending_bytes_{0};
  std::unique_ptr<rocksdb::DB> db_;
  std::unique_ptr<BlobFiles> files_;
  bool new_blobs_in_files_ = true;  // StoreOptions::blob_files
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* chunks_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* manifests_ = nullptr;
  rocksdb::ColumnFamilyHandle* tags_ = nullptr;
  rocksdb::ColumnFamilyHandle* links_ = nullptr;
  rocksdb::ColumnFamilyHandle* access_ = nullptr;
  rocksdb::ColumnFamilyHandle* refs_ = nullptr;
  rocksdb::ColumnFamilyHandle* verdicts_ = nullptr;
  rocksdb::ColumnFamilyHandle* allowed_ = nullptr;
  std::mutex access_mu_;
  std::map<std::string, int64_t> pending_access_;  // digest → unix seconds, not yet written
  std::map<std::string, int> pins_;                 // digest → readers (under access_mu_)
};

// Key helpers, exposed for tests.
std::string ChunkKey(const oci::Digest& d, uint64_t index);

// A pin on `d` from construction to destruction (Store::Pin). The store must
// outlive it. Not copyable; share it through a shared_ptr to hand it on.
class StorePin {
 public:
  StorePin(Store* store, const oci::Digest& d) : store_(store), d_(d) { store_->Pin(d_); }
  ~StorePin() { store_->Unpin(d_); }
  StorePin(const StorePin&) = delete;
  StorePin& operator=(const StorePin&) = delete;

 private:
  Store* store_;
  oci::Digest d_;
};

}  // namespace portcullis::proxy
