#include "proxy/store.h"

#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <charconv>
#include <cstdarg>
#include <cstdio>
#include <chrono>
#include <filesystem>
#include <memory>
#include <new>
#include <set>
#include <tuple>

#include "proxy/direct_io.h"
#include "proxy/log.h"

namespace portcullis::proxy {

namespace {

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  if (s.IsNotFound()) return Status::NotFound(what + ": not found");
  return Status::IoError(what + ": " + s.ToString());
}

// Every write into RocksDB goes through RocksWrite. In a ThreadSanitizer build
// (tests/sanitize.sh tsan) the calling thread's memory accesses are not
// checked while it is inside RocksDB's write path; elsewhere it only calls
// `write`. Debian's RocksDB is not compiled with -fsanitize=thread, so TSan
// cannot see the synchronization inside it: the leader of a write group copies
// the other writers' batches into the log and the memtable (group commit), and
// TSan reported that copy as a race between two fetch threads (Fail's DropBlob
// against another fetch's BeginBlob; CI at stop 20, reproduced in 1 of 11 runs).
// RocksDB's own functions never appear in TSan's stacks (it records only
// instrumented ones), so tests/tsan.supp cannot name them. Accesses our code
// makes outside these calls are still checked.
#if defined(__SANITIZE_THREAD__)
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
template <class Write>
rocksdb::Status RocksWrite(Write&& write) {
  AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
  AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
  rocksdb::Status s = write();
  AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
  AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  return s;
}
#else
template <class Write>
rocksdb::Status RocksWrite(Write&& write) {
  return write();
}
#endif

void PutU64(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t GetU64(std::string_view s) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(s[i]);
  return v;
}

// 'C' (complete) or 'P' (pending), size, chunk size, created; then 'F' when
// the bytes are in the blob's file (records of older versions end before it:
// their chunks are in RocksDB).
std::string EncodeMeta(const BlobMeta& m) {
  std::string out;
  out.push_back(m.complete ? 'C' : 'P');
  PutU64(&out, m.size);
  PutU64(&out, m.chunk_bytes);
  PutU64(&out, static_cast<uint64_t>(m.created));
  if (m.in_file) out.push_back('F');
  return out;
}

std::optional<BlobMeta> DecodeMeta(std::string_view s) {
  if ((s.size() != 25 && !(s.size() == 26 && s[25] == 'F')) || (s[0] != 'C' && s[0] != 'P')) return std::nullopt;
  BlobMeta m;
  m.complete = s[0] == 'C';
  m.in_file = s.size() == 26;
  m.size = GetU64(s.substr(1));
  m.chunk_bytes = GetU64(s.substr(9));
  m.created = static_cast<int64_t>(GetU64(s.substr(17)));
  if (m.chunk_bytes == 0) return std::nullopt;  // readers divide by it
  return m;
}

// RocksDB's own log, forwarded to the proxy's log (warnings at debug level,
// errors as errors) instead of a LOG file in the data dir. On a full disk that file's writer fails, and the
// next line RocksDB logs (its report of the error) trips an assertion in the
// Debian build of librocksdb (WritableFileWriter::Append after an error) and
// aborts the process: tests/integration/test_disk_full.sh found it.
class ForwardingLogger : public rocksdb::Logger {
 public:
  ForwardingLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  void Logv(const char* format, va_list ap) override { Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap); }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel() || level == rocksdb::InfoLogLevel::HEADER_LEVEL) return;
    char buf[1024];
    int n = vsnprintf(buf, sizeof(buf), format, ap);
    if (n < 0) return;
    std::string msg(buf, std::min<size_t>(static_cast<size_t>(n), sizeof(buf) - 1));
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    // RocksDB's warnings are mostly routine back-pressure ("Stopping writes
    // because we have 2 immutable memtables") during every large cold fetch:
    // debug level. Its errors (a failed flush, a full disk) stay errors.
    Log(level >= rocksdb::InfoLogLevel::ERROR_LEVEL ? LogLevel::kError : LogLevel::kDebug, "rocksdb",
        {{"message", msg}});
  }
};

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string ChunkKey(const oci::Digest& d, uint64_t index) {
  std::string k = d.ToString();
  k.push_back('/');
  PutU64(&k, index);
  return k;
}

StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& dir, int* cleaned, const StoreOptions& options) {
  std::error_code ec;
  // Cached layers may be private: a data dir this creates is the owner's only
  // (an existing one keeps the permissions its operator chose).
  const bool created = std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IoError("cannot create data dir " + dir + ": " + ec.message());
  if (created) {
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all, std::filesystem::perm_options::replace, ec);
    if (ec) return Status::IoError("cannot make data dir " + dir + " private (0700): " + ec.message());
  }

  rocksdb::DBOptions db_opts;
  db_opts.create_if_missing = true;
  db_opts.create_missing_column_families = true;
  db_opts.max_background_jobs = 2;
  db_opts.keep_log_file_num = 3;
  db_opts.max_open_files = 512;
  // Chunk bytes skip the WAL (Store::PutChunk); the last chunk of each blob goes
  // through it with the commit. Without a bound RocksDB keeps up to 4x the
  // memtables there (and the small column families rarely flush). Bound it so
  // the data dir tracks the cache size.
  db_opts.max_total_wal_size = 48ull << 20;
  db_opts.info_log = std::make_shared<ForwardingLogger>();
  // Flushes write the chunks' blob files with O_DIRECT only when asked and the
  // file system takes it (StoreOptions). Buffered, the kernel copies every
  // layer byte into the page cache (flush 0.1-0.4 CPU-s per 200 MiB on the
  // bench VM, 0.07-0.09 direct), but the page cache takes the bytes at memory
  // speed: with O_DIRECT on a 480 MB/s disk the fetch waited 0.3-0.8 s per
  // 200 MiB for its writer (bench/README.md, lever 6). Reads stay buffered.
  db_opts.use_direct_io_for_flush_and_compaction = options.direct_writes && DirectWritesWork(dir);

  rocksdb::ColumnFamilyOptions small;
  small.OptimizeForSmallDb();
  rocksdb::ColumnFamilyOptions chunks;
  // Chunks are large and written once: keep them out of the LSM tree (integrated
  // BlobDB) so compaction does not rewrite layer bytes again and again.
  chunks.enable_blob_files = true;
  chunks.min_blob_size = 4096;
  chunks.blob_file_size = 256ull << 20;
  chunks.enable_blob_garbage_collection = true;
  // Chunk bytes sit in the memtable until a flush moves them to a
  // blob file: keep that small so memory stays bounded and each flush makes a
  // small blob file that eviction can free whole.
  chunks.write_buffer_size = 16ull << 20;
  chunks.max_write_buffer_number = 2;
  chunks.compression = rocksdb::kNoCompression;
  chunks.blob_compression_type = rocksdb::kNoCompression;

  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, small}, {"blob_chunks", chunks}, {"blob_meta", small},
      {"manifests", small},                        {"tags", small},          {"links", small},
      {"blob_access", small},                      {"refs", small},
      {"verdicts", small},                         {"gate_allowed", small}};
  auto store = std::unique_ptr<Store>(new Store());
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_opts, dir, cfs, &store->handles_, &raw);
  if (!s.ok()) return Status::IoError("cannot open the cache in " + dir + ": " + s.ToString());
  store->db_.reset(raw);
  store->chunks_ = store->handles_[1];
  store->meta_ = store->handles_[2];
  store->manifests_ = store->handles_[3];
  store->tags_ = store->handles_[4];
  store->links_ = store->handles_[5];
  store->access_ = store->handles_[6];
  store->refs_ = store->handles_[7];
  store->verdicts_ = store->handles_[8];
  store->allowed_ = store->handles_[9];
  PC_ASSIGN_OR_RETURN(store->files_, BlobFiles::Open(dir + "/blobs", options.direct_writes));
  store->new_blobs_in_files_ = options.blob_files;
  int n = 0;
  PC_RETURN_IF_ERROR(store->CleanPending(&n));
  if (cleaned != nullptr) *cleaned = n;
  return store;
}

Store::~Store() {
  if (db_) {
    (void)FlushAccess();
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
    db_->Close();
  }
}

bool Store::direct_flush() const { return db_->GetDBOptions().use_direct_io_for_flush_and_compaction; }

Status Store::CleanPending(int* cleaned) {
  std::vector<oci::Digest> pending;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto m = DecodeMeta(it->value().ToStringView());
    if (m && m->complete) {
      ++blobs_;
      blob_bytes_ += m->size;
      continue;
    }
    auto d = oci::Digest::Parse(it->key().ToStringView());
    if (d.ok()) pending.push_back(*d);
  }
  PC_RETURN_IF_ERROR(FromRocks(it->status(), "scanning blob records"));
  for (const auto& d : pending) PC_RETURN_IF_ERROR(DropBlob(d));
  *cleaned = static_cast<int>(pending.size());
  if (!pending.empty()) ReclaimDropped(pending);
  // Files no complete record names: a crash after a file was made and before
  // its record, or during a drop (the record goes first).
  int orphans = 0;
  PC_RETURN_IF_ERROR(files_->Sweep(
      [&](const oci::Digest& d) {
        auto m = GetBlobMeta(d);
        return !m.ok() || (*m && (*m)->complete && (*m)->in_file);  // unreadable record: keep, do not guess
      },
      &orphans));
  *cleaned += orphans;
  std::unique_ptr<rocksdb::Iterator> mit(db_->NewIterator(rocksdb::ReadOptions(), manifests_));
  for (mit->SeekToFirst(); mit->Valid(); mit->Next()) ++manifests_count_;
  PC_RETURN_IF_ERROR(FromRocks(mit->status(), "scanning manifests"));
  return Status::Ok();
}

void Store::ReclaimDropped(const std::vector<oci::Digest>& dropped) {
  // DropBlob only marks the chunks deleted (a range tombstone): their bytes
  // stay in blob files until a compaction drops the keys, after which RocksDB
  // deletes the blob files nothing refers to. Left alone, a crash during a large
  // cold fetch would keep its partial bytes on disk indefinitely. Compact only
  // the dropped ranges (cheap: the keys are small, the values live in blob
  // files); past a bound, the whole chunk family once. A blob file shared with
  // chunks of committed blobs (fetches that ran at the same time share
  // memtables) stays until those blobs go too; forcing blob GC here could
  // rewrite far more live bytes than it frees. Best effort: the cache is
  // correct without it, so a failure (e.g. a full disk) only logs.
  constexpr size_t kMaxRanges = 16;
  rocksdb::CompactRangeOptions o;
  o.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  rocksdb::Status s;
  if (dropped.size() > kMaxRanges) {
    s = RocksWrite([&] { return db_->CompactRange(o, chunks_, nullptr, nullptr); });
  } else {
    for (const auto& d : dropped) {
      const std::string b = ChunkKey(d, 0), e = ChunkKey(d, UINT64_MAX);
      const rocksdb::Slice begin(b), end(e);
      s = RocksWrite([&] { return db_->CompactRange(o, chunks_, &begin, &end); });
      if (!s.ok()) break;
    }
  }
  if (!s.ok()) {
    Log(LogLevel::kWarn,
        "could not compact the chunks of half-written blobs; their bytes stay on disk until a later compaction",
        {{"blobs", dropped.size()}, {"error", s.ToString()}});
  }
}

namespace {
rocksdb::ReadOptions MemoryOnly() {
  rocksdb::ReadOptions ro;
  ro.read_tier = rocksdb::kBlockCacheTier;  // Incomplete instead of a disk read
  return ro;
}

// A manifests record: "<media type>\n<bytes>".
std::optional<StoredManifest> DecodeManifest(const std::string& v) {
  auto nl = v.find('\n');
  if (nl == std::string::npos) return std::nullopt;
  return StoredManifest{v.substr(0, nl), v.substr(nl + 1)};
}

// A tags record: "<digest> <decimal seconds>", as PutTag writes it; anything
// else is corruption (nullopt), never an exception.
std::optional<TagRecord> DecodeTag(std::string_view v) {
  auto sp = v.find(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  auto d = oci::Digest::Parse(v.substr(0, sp));
  if (!d.ok()) return std::nullopt;
  int64_t fetched_at = 0;
  std::string_view num = v.substr(sp + 1);
  auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), fetched_at);
  if (ec != std::errc() || end != num.data() + num.size() || num.empty()) return std::nullopt;
  return TagRecord{*d, fetched_at};
}
}  // namespace

StatusOr<std::optional<StoredManifest>> Store::GetManifest(const oci::Digest& d) {
  std::string v;
  auto s = db_->Get(rocksdb::ReadOptions(), manifests_, d.ToString(), &v);
  if (s.IsNotFound()) return std::optional<StoredManifest>();
  PC_RETURN_IF_ERROR(FromRocks(s, "reading manifest " + d.ToString()));
  auto m = DecodeManifest(v);
  if (!m) return Status::IoError("corrupt manifest record " + d.ToString());
  return m;
}

std::optional<StoredManifest> Store::PeekManifest(const oci::Digest& d) {
  std::string v;
  if (!db_->Get(MemoryOnly(), manifests_, d.ToString(), &v).ok()) return std::nullopt;
  return DecodeManifest(v);
}

Status Store::PutManifest(const oci::Digest& d, const StoredManifest& m) {
  std::string existing;
  if (db_->Get(rocksdb::ReadOptions(), manifests_, d.ToString(), &existing).IsNotFound()) ++manifests_count_;
  const std::string value = m.media_type + "\n" + m.bytes;
  return FromRocks(RocksWrite([&] { return db_->Put(rocksdb::WriteOptions(), manifests_, d.ToString(), value); }),
                   "writing manifest " + d.ToString());
}

StatusOr<std::optional<TagRecord>> Store::GetTag(const std::string& key) {
  std::string v;
  auto s = db_->Get(rocksdb::ReadOptions(), tags_, key, &v);
  if (s.IsNotFound()) return std::optional<TagRecord>();
  PC_RETURN_IF_ERROR(FromRocks(s, "reading tag " + key));
  auto rec = DecodeTag(v);
  if (!rec) return Status::IoError("corrupt tag record " + key);
  return rec;
}

std::optional<TagRecord> Store::PeekTag(const std::string& key) {
  std::string v;
  if (!db_->Get(MemoryOnly(), tags_, key, &v).ok()) return std::nullopt;
  return DecodeTag(v);
}

Status Store::PutTag(const std::string& key, const TagRecord& rec) {
  const std::string value = rec.digest.ToString() + " " + std::to_string(rec.fetched_at);
  return FromRocks(RocksWrite([&] { return db_->Put(rocksdb::WriteOptions(), tags_, key, value); }),
                   "writing tag " + key);
}

Status Store::DeleteTag(const std::string& key) {
  return FromRocks(RocksWrite([&] { return db_->Delete(rocksdb::WriteOptions(), tags_, key); }), "deleting tag " + key);
}

bool Store::HasLink(const std::string& repo, const oci::Digest& d) {
  std::string v;
  return db_->Get(rocksdb::ReadOptions(), links_, repo + "@" + d.ToString(), &v).ok();
}

bool Store::PeekLink(const std::string& repo, const oci::Digest& d) {
  std::string v;
  return db_->Get(MemoryOnly(), links_, repo + "@" + d.ToString(), &v).ok();
}

Status Store::PutLinks(const std::string& repo, const std::vector<oci::Digest>& ds) {
  rocksdb::WriteBatch b;
  for (const auto& d : ds) b.Put(links_, repo + "@" + d.ToString(), "");
  return FromRocks(RocksWrite([&] { return db_->Write(rocksdb::WriteOptions(), &b); }), "writing links for " + repo);
}

StatusOr<std::optional<BlobMeta>> Store::GetBlobMeta(const oci::Digest& d) {
  std::string v;
  auto s = db_->Get(rocksdb::ReadOptions(), meta_, d.ToString(), &v);
  if (s.IsNotFound()) return std::optional<BlobMeta>();
  PC_RETURN_IF_ERROR(FromRocks(s, "reading blob record " + d.ToString()));
  auto m = DecodeMeta(v);
  if (!m) return Status::IoError("corrupt blob record " + d.ToString());
  return std::optional<BlobMeta>(*m);
}

Status Store::BeginBlob(const oci::Digest& d, uint64_t chunk_bytes) {
  // A complete blob is never turned back into a pending one (review L2).
  std::string v;
  if (db_->Get(rocksdb::ReadOptions(), meta_, d.ToString(), &v).ok()) {
    auto was = DecodeMeta(v);
    if (was && was->complete) return Status::AlreadyExists("blob " + d.ToString() + " is already cached");
  }
  BlobMeta m;
  m.complete = false;
  m.in_file = new_blobs_in_files_;
  m.chunk_bytes = chunk_bytes;
  m.created = Now();
  // The file first: a record never names a file that was not made. A file
  // whose record then fails to be written is removed here, or at the next Open.
  if (m.in_file) PC_RETURN_IF_ERROR(files_->Create(d, chunk_bytes));
  Status st = FromRocks(RocksWrite([&] { return db_->Put(rocksdb::WriteOptions(), meta_, d.ToString(), EncodeMeta(m)); }),
                        "recording pending blob " + d.ToString());
  if (!st.ok() && m.in_file) (void)files_->Remove(d);
  return st;
}

Status Store::PutChunk(const oci::Digest& d, uint64_t index, std::string_view data) {
  // A blob begun with a file writes there; one begun in RocksDB chunks
  // (StoreOptions::blob_files off) has no file open.
  if (files_->IsOpen(d)) return files_->WriteChunk(d, index, data);
  // Not through the write-ahead log: Debian's RocksDB checksums WAL records
  // with its software CRC32c, which cost a third of a cold fetch's CPU, and
  // writing every layer twice buys nothing. A crash loses only chunks of a
  // blob still marked pending (cleaned at start); CommitBlob flushes them to
  // blob files before it marks the blob complete.
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;
  return FromRocks(RocksWrite([&] { return db_->Put(wo, chunks_, ChunkKey(d, index), rocksdb::Slice(data)); }),
                   "writing chunk of " + d.ToString());
}

Status Store::CommitBlob(const oci::Digest& d, uint64_t last_index, std::string_view last_data, uint64_t size,
                         uint64_t chunk_bytes) {
  // First the bytes are made durable, then the record says complete, in one
  // synced write: a complete record must not outlive its bytes after a crash.
  const bool in_file = files_->IsOpen(d);
  rocksdb::WriteBatch b;
  if (in_file) {
    if (!last_data.empty()) PC_RETURN_IF_ERROR(files_->WriteChunk(d, last_index, last_data));
    PC_RETURN_IF_ERROR(files_->Finish(d, size));
  } else {
    if (last_index > 0) {
      // Chunks written by PutChunk skipped the log: flush them first.
      rocksdb::FlushOptions fo;
      fo.wait = true;
      fo.allow_write_stall = true;
      PC_RETURN_IF_ERROR(FromRocks(RocksWrite([&] { return db_->Flush(fo, chunks_); }),
                                   "flushing the chunks of " + d.ToString()));
    }
    if (!last_data.empty()) b.Put(chunks_, ChunkKey(d, last_index), rocksdb::Slice(last_data));
  }
  BlobMeta m;
  m.complete = true;
  m.in_file = in_file;
  m.size = size;
  m.chunk_bytes = chunk_bytes;
  m.created = Now();
  b.Put(meta_, d.ToString(), EncodeMeta(m));
  rocksdb::WriteOptions wo;
  wo.sync = true;
  PC_RETURN_IF_ERROR(FromRocks(RocksWrite([&] { return db_->Write(wo, &b); }), "committing blob " + d.ToString()));
  ++blobs_;
  blob_bytes_ += size;
  return Status::Ok();
}

Status Store::DropBlob(const oci::Digest& d) {
  std::string v;
  std::optional<BlobMeta> was;
  if (db_->Get(rocksdb::ReadOptions(), meta_, d.ToString(), &v).ok()) was = DecodeMeta(v);
  rocksdb::WriteBatch b;
  b.DeleteRange(chunks_, ChunkKey(d, 0), ChunkKey(d, UINT64_MAX));
  b.Delete(chunks_, ChunkKey(d, UINT64_MAX));
  b.Delete(meta_, d.ToString());
  PC_RETURN_IF_ERROR(FromRocks(RocksWrite([&] { return db_->Write(rocksdb::WriteOptions(), &b); }),
                               "dropping blob " + d.ToString()));
  if (was && was->complete) {
    --blobs_;
    blob_bytes_ -= was->size;
  }
  // The record went first: a file left by a failed delete (or a crash here)
  // is named by no record, and the next Open removes it.
  return files_->Remove(d);
}

StoreStats Store::Stats() const {
  StoreStats s;
  s.blobs = blobs_;
  s.blob_bytes = blob_bytes_;
  s.pending_bytes = pending_bytes_;
  s.manifests = manifests_count_;
  return s;
}

Status Store::ReadFileChunk(const oci::Digest& d, const BlobMeta& meta, uint64_t index, rocksdb::PinnableSlice* out) {
  const uint64_t cb = meta.chunk_bytes;  // > 0 (DecodeMeta)
  auto absent = [&] { return Status::NotFound("no chunk " + std::to_string(index) + " of " + d.ToString()); };
  if (index >= static_cast<uint64_t>(INT64_MAX) / cb) return absent();
  const uint64_t offset = index * cb;
  // A complete blob's chunk is read at its exact length (a small blob's one
  // chunk is small); a pending one's up to the chunk size.
  uint64_t want = cb;
  if (meta.complete) {
    if (offset >= meta.size) return absent();
    want = std::min(cb, meta.size - offset);
  }
  // Not a std::string: resizing one zero-fills what the read then overwrites.
  std::unique_ptr<char[]> buf(new (std::nothrow) char[want]);
  if (!buf) return Status::Internal("no memory for a chunk of " + std::to_string(want) + " bytes");
  size_t got = 0;
  PC_RETURN_IF_ERROR(files_->Read(d, offset, buf.get(), static_cast<size_t>(want), &got));
  if (got == 0 && !meta.complete) return absent();
  if (meta.complete && got != want) {
    return Status::IoError("the file of cached blob " + d.ToString() + " is shorter than its record (" +
                           std::to_string(offset + got) + " of " + std::to_string(meta.size) +
                           " bytes): damaged; `portcullis admin cache fsck` drops it");
  }
  out->Reset();
  char* bytes = buf.release();
  out->PinSlice(rocksdb::Slice(bytes, got), [](void* p, void*) { delete[] static_cast<char*>(p); }, bytes, nullptr);
  return Status::Ok();
}

Status Store::ReadChunk(const oci::Digest& d, uint64_t index, rocksdb::PinnableSlice* out, bool verify) {
  PC_ASSIGN_OR_RETURN(std::optional<BlobMeta> meta, GetBlobMeta(d));
  if (meta && meta->in_file) return ReadFileChunk(d, *meta, index, out);
  rocksdb::ReadOptions ro;
  ro.verify_checksums = verify;
  ro.fill_cache = false;  // chunks are read once per response; keep the block cache for metadata
  return FromRocks(db_->Get(ro, chunks_, ChunkKey(d, index), out),
                   "reading chunk " + std::to_string(index) + " of " + d.ToString());
}

// ---- Maintenance ----

void Store::Touch(const oci::Digest& d) {
  bool flush = false;
  {
    std::lock_guard<std::mutex> l(access_mu_);
    pending_access_[d.ToString()] = Now();
    flush = pending_access_.size() >= 10000;  // bound the batch
  }
  if (flush) (void)FlushAccess();
}

void Store::Pin(const oci::Digest& d) {
  std::lock_guard<std::mutex> l(access_mu_);
  ++pins_[d.ToString()];
}

void Store::Unpin(const oci::Digest& d) {
  std::lock_guard<std::mutex> l(access_mu_);
  auto it = pins_.find(d.ToString());
  if (it != pins_.end() && --it->second <= 0) pins_.erase(it);
}

bool Store::Pinned(const oci::Digest& d) {
  std::lock_guard<std::mutex> l(access_mu_);
  return pins_.count(d.ToString()) > 0;
}

Status Store::FlushAccess() {
  std::map<std::string, int64_t> batch;
  {
    std::lock_guard<std::mutex> l(access_mu_);
    batch.swap(pending_access_);
  }
  if (batch.empty()) return Status::Ok();
  rocksdb::WriteBatch b;
  for (const auto& [k, t] : batch) {
    std::string v;
    PutU64(&v, static_cast<uint64_t>(t));
    b.Put(access_, k, v);
  }
  return FromRocks(RocksWrite([&] { return db_->Write(rocksdb::WriteOptions(), &b); }), "writing last-access times");
}

int64_t Store::LastAccess(const oci::Digest& d) {
  {
    std::lock_guard<std::mutex> l(access_mu_);
    auto it = pending_access_.find(d.ToString());
    if (it != pending_access_.end()) return it->second;
  }
  std::string v;
  if (!db_->Get(rocksdb::ReadOptions(), access_, d.ToString(), &v).ok() || v.size() != 8) return 0;
  return static_cast<int64_t>(GetU64(v));
}

Status Store::PutRefs(const oci::Digest& m, const std::vector<oci::Digest>& needed) {
  rocksdb::WriteBatch b;
  for (const auto& n : needed) b.Put(refs_, n.ToString() + "@" + m.ToString(), "");
  return FromRocks(RocksWrite([&] { return db_->Write(rocksdb::WriteOptions(), &b); }),
                   "writing refs of " + m.ToString());
}

Status Store::DeleteManifest(const oci::Digest& d) {
  const std::string key = d.ToString();
  std::string v;
  bool existed = db_->Get(rocksdb::ReadOptions(), manifests_, key, &v).ok();
  PC_RETURN_IF_ERROR(FromRocks(RocksWrite([&] { return db_->Delete(rocksdb::WriteOptions(), manifests_, key); }),
                               "deleting manifest " + key));
  if (existed) --manifests_count_;
  return Status::Ok();
}

Status Store::DropDependents(const oci::Digest& d, uint64_t* manifests, uint64_t* tags) {
  std::vector<oci::Digest> todo = {d};
  std::vector<oci::Digest> dropped;
  // Bounded: each manifest is dropped once; refs form a DAG of finite size.
  for (size_t i = 0; i < todo.size() && i < 100000; ++i) {
    const std::string prefix = todo[i].ToString() + "@";
    std::vector<std::string> keys;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), refs_));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      keys.push_back(it->key().ToString());
    }
    PC_RETURN_IF_ERROR(FromRocks(it->status(), "scanning refs"));
    for (const auto& k : keys) {
      auto holder = oci::Digest::Parse(std::string_view(k).substr(prefix.size()));
      PC_RETURN_IF_ERROR(FromRocks(RocksWrite([&] { return db_->Delete(rocksdb::WriteOptions(), refs_, k); }),
                                   "deleting ref"));
      if (!holder.ok()) continue;
      std::string v;
      if (db_->Get(rocksdb::ReadOptions(), manifests_, holder->ToString(), &v).ok()) {
        PC_RETURN_IF_ERROR(DeleteManifest(*holder));
        ++*manifests;
        dropped.push_back(*holder);
        todo.push_back(*holder);
      }
    }
  }
  if (dropped.empty()) return Status::Ok();
  // Tags naming a dropped manifest would point at nothing: drop them too.
  std::set<std::string> gone;
  for (const auto& m : dropped) gone.insert(m.ToString());
  std::vector<std::string> tag_keys;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), tags_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view v = it->value().ToStringView();
    if (gone.count(std::string(v.substr(0, v.find(' '))))) tag_keys.push_back(it->key().ToString());
  }
  PC_RETURN_IF_ERROR(FromRocks(it->status(), "scanning tags"));
  for (const auto& k : tag_keys) {
    PC_RETURN_IF_ERROR(DeleteTag(k));
    ++*tags;
  }
  return Status::Ok();
}

StatusOr<std::vector<Store::BlobInfo>> Store::ListBlobs() {
  std::vector<BlobInfo> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto m = DecodeMeta(it->value().ToStringView());
    auto d = oci::Digest::Parse(it->key().ToStringView());
    if (!m || !m->complete || !d.ok()) continue;
    BlobInfo b;
    b.digest = *d;
    b.size = m->size;
    b.chunk_bytes = m->chunk_bytes;
    b.created = m->created;
    out.push_back(b);
  }
  PC_RETURN_IF_ERROR(FromRocks(it->status(), "listing blobs"));
  for (auto& b : out) {
    b.last_access = LastAccess(b.digest);
    if (b.last_access == 0) b.last_access = b.created;
  }
  return out;
}

StatusOr<std::vector<Store::ManifestInfo>> Store::ListManifests() {
  std::vector<ManifestInfo> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), manifests_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto d = oci::Digest::Parse(it->key().ToStringView());
    if (!d.ok()) continue;
    std::string_view v = it->value().ToStringView();
    auto nl = v.find('\n');
    if (nl == std::string_view::npos) continue;
    out.push_back({*d, std::string(v.substr(0, nl)), v.size() - nl - 1});
  }
  PC_RETURN_IF_ERROR(FromRocks(it->status(), "listing manifests"));
  return out;
}

StatusOr<std::map<std::string, std::vector<std::string>>> Store::LinksByDigest() {
  std::map<std::string, std::vector<std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), links_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view k = it->key().ToStringView();
    auto at = k.rfind('@');
    if (at == std::string_view::npos) continue;
    out[std::string(k.substr(at + 1))].push_back(std::string(k.substr(0, at)));
  }
  PC_RETURN_IF_ERROR(FromRocks(it->status(), "listing links"));
  return out;
}

StatusOr<std::map<std::string, std::vector<std::string>>> Store::TagsByDigest() {
  std::map<std::string, std::vector<std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), tags_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view v = it->value().ToStringView();
    out[std::string(v.substr(0, v.find(' ')))].push_back(it->key().ToString());
  }
  PC_RETURN_IF_ERROR(FromRocks(it->status(), "listing tags"));
  return out;
}

Status Store::DeleteRepo(const std::string& repo, uint64_t* links, uint64_t* tags) {
  rocksdb::WriteBatch b;
  for (auto [cf, sep, count] : {std::tuple{links_, '@', links}, std::tuple{tags_, ':', tags}}) {
    const std::string prefix = repo + sep;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      // "a/b:" must not match repo "a/b:c/..."; tags and links have no '/' after the separator.
      std::string_view rest = it->key().ToStringView().substr(prefix.size());
      if (rest.find('/') != std::string_view::npos) continue;
      b.Delete(cf, it->key());
      ++*count;
    }
    PC_RETURN_IF_ERROR(FromRocks(it->status(), "scanning " + repo));
  }
  return FromRocks(RocksWrite([&] { return db_->Write(rocksdb::WriteOptions(), &b); }), "purging " + repo);
}

Status Store::DeleteLinksTo(const oci::Digest& d, uint64_t* tags) {
  const std::string ds = d.ToString();
  rocksdb::WriteBatch b;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), links_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view k = it->key().ToStringView();
    if (k.size() > ds.size() && k.substr(k.size() - ds.size()) == ds && k[k.size() - ds.size() - 1] == '@') {
      b.Delete(links_, it->key());
    }
  }
  PC_RETURN_IF_ERROR(FromRocks(it->status(), "scanning links"));
  std::unique_ptr<rocksdb::Iterator> t(db_->NewIterator(rocksdb::ReadOptions(), tags_));
  for (t->SeekToFirst(); t->Valid(); t->Next()) {
    std::string_view v = t->value().ToStringView();
    if (v.substr(0, v.find(' ')) == ds) {
      b.Delete(tags_, t->key());
      ++*tags;
    }
  }
  PC_RETURN_IF_ERROR(FromRocks(t->status(), "scanning tags"));
  return FromRocks(RocksWrite([&] { return db_->Write(rocksdb::WriteOptions(), &b); }), "unlinking " + ds);
}

Status Store::CompactChunks() {
  // Compaction of the chunk keys is cheap (the values live in blob files); it
  // drops deleted keys, after which blob files nothing refers to are deleted.
  rocksdb::CompactRangeOptions o;
  o.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  PC_RETURN_IF_ERROR(FromRocks(RocksWrite([&] { return db_->CompactRange(o, chunks_, nullptr, nullptr); }),
                               "compacting chunks"));
  return FromRocks(RocksWrite([&] { return db_->CompactRange(o, meta_, nullptr, nullptr); }),
                   "compacting blob records");
}

StatusOr<std::optional<std::string>> Store::GetVerdict(const std::string& key) {
  std::string v;
  auto st = db_->Get(rocksdb::ReadOptions(), verdicts_, key, &v);
  if (st.IsNotFound()) return std::optional<std::string>();
  PC_RETURN_IF_ERROR(FromRocks(st, "reading verdict"));
  return std::optional<std::string>(v);
}

Status Store::PutVerdict(const std::string& key, const std::string& value) {
  return FromRocks(RocksWrite([&] { return db_->Put(rocksdb::WriteOptions(), verdicts_, key, value); }),
                   "writing verdict");
}

Status Store::PutGateMarks(const std::vector<std::string>& keys, const std::string& value) {
  rocksdb::WriteBatch b;
  for (const auto& k : keys) b.Put(allowed_, k, value);
  return FromRocks(RocksWrite([&] { return db_->Write(rocksdb::WriteOptions(), &b); }), "recording gate passes");
}

StatusOr<std::optional<std::string>> Store::GetGateMark(const std::string& key) {
  std::string v;
  auto st = db_->Get(rocksdb::ReadOptions(), allowed_, key, &v);
  if (st.IsNotFound()) return std::optional<std::string>();
  PC_RETURN_IF_ERROR(FromRocks(st, "reading gate pass"));
  return std::optional<std::string>(v);
}

Status Store::DropGateRecords(const std::function<bool(std::string_view key, std::string_view value)>& drop,
                              uint64_t* dropped) {
  *dropped = 0;
  for (rocksdb::ColumnFamilyHandle* cf : {verdicts_, allowed_}) {
    rocksdb::WriteBatch b;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (!drop(it->key().ToStringView(), it->value().ToStringView())) continue;
      b.Delete(cf, it->key());
      ++*dropped;
      if (b.Count() >= 10000) {
        PC_RETURN_IF_ERROR(FromRocks(RocksWrite([&] { return db_->Write(rocksdb::WriteOptions(), &b); }),
                                     "collecting gate records"));
        b.Clear();
      }
    }
    PC_RETURN_IF_ERROR(FromRocks(it->status(), "scanning gate records"));
    PC_RETURN_IF_ERROR(FromRocks(RocksWrite([&] { return db_->Write(rocksdb::WriteOptions(), &b); }),
                                 "collecting gate records"));
  }
  return Status::Ok();
}

}  // namespace portcullis::proxy
