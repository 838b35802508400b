// Tests for the store's blob files (proxy/store.h, proxy/blob_files.h): where
// a blob's bytes go, what a crash leaves and what Open removes, and caches
// whose blobs older versions wrote into RocksDB chunks.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "proxy/store.h"
#include "proxy/store_test_util.h"
#include "tests/test_util.h"

namespace {

using portcullis::Code;
using portcullis::oci::Digest;
using portcullis::proxy::Store;
using portcullis::proxy::StoreOptions;
using portcullis::proxy::testing::OpenStore;
using portcullis::testing::TempDir;

std::string FileOf(const TempDir& dir, const Digest& d) {
  return dir.str() + "/blobs/sha256/" + d.hex().substr(0, 2) + "/" + d.hex();
}

std::string ReadBlob(Store& st, const Digest& d, uint64_t chunks) {
  std::string all;
  for (uint64_t i = 0; i < chunks; ++i) {
    rocksdb::PinnableSlice c;
    auto s = st.ReadChunk(d, i, &c);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    all.append(c.data(), c.size());
  }
  return all;
}

// Writes `data` as a blob of `cb`-byte chunks and commits it.
void PutBlob(Store& st, const Digest& d, const std::string& data, uint64_t cb) {
  REQUIRE(st.BeginBlob(d, cb).ok());
  uint64_t i = 0;
  for (; (i + 1) * cb <= data.size(); ++i) REQUIRE(st.PutChunk(d, i, std::string_view(data).substr(i * cb, cb)).ok());
  auto s = st.CommitBlob(d, i, std::string_view(data).substr(i * cb), data.size(), cb);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
}

TEST_CASE("proxy: store keeps a blob's bytes in its file, readable chunk by chunk, named by its record") {
  TempDir dir;
  auto st = OpenStore(dir.str());
  const std::string data = "0123456789abcdefghij";  // 20 bytes: chunks of 8, 8 and 4
  const Digest d = Digest::Sha256Of(data);
  REQUIRE(st->BeginBlob(d, 8).ok());
  REQUIRE(std::filesystem::exists(FileOf(dir, d)));  // made at BeginBlob
  REQUIRE(st->PutChunk(d, 0, "01234567").ok());
  // Readable while pending: a reader behind the fetch's window reads the store.
  CHECK(ReadBlob(*st, d, 1) == "01234567");
  REQUIRE(st->PutChunk(d, 1, "89abcdef").ok());
  REQUIRE(st->CommitBlob(d, 2, "ghij", 20, 8).ok());
  auto m = st->GetBlobMeta(d);
  REQUIRE(m.ok());
  REQUIRE(m->has_value());
  CHECK((*m)->complete);
  CHECK((*m)->in_file);
  CHECK(std::filesystem::file_size(FileOf(dir, d)) == 20);
  CHECK(ReadBlob(*st, d, 3) == data);
  rocksdb::PinnableSlice past;
  CHECK(st->ReadChunk(d, 3, &past).code() == Code::kNotFound);
  CHECK(st->ReadChunk(d, UINT64_MAX, &past).code() == Code::kNotFound);
  CHECK(st->Stats().blobs == 1);
  CHECK(st->Stats().blob_bytes == 20);
  // Reopened, the complete blob and its file stay.
  st.reset();
  int cleaned = -1;
  st = OpenStore(dir.str(), &cleaned);
  CHECK(cleaned == 0);
  CHECK(ReadBlob(*st, d, 3) == data);
  // Dropped: the record and the file go.
  REQUIRE(st->DropBlob(d).ok());
  CHECK_FALSE(std::filesystem::exists(FileOf(dir, d)));
  CHECK(st->ReadChunk(d, 0, &past).code() == Code::kNotFound);
}

TEST_CASE("proxy: store removes at Open what a crash left: a pending blob's file, a file no record names") {
  TempDir dir;
  const Digest pending = Digest::Sha256Of("cut short");
  const Digest done = Digest::Sha256Of("complete");
  const Digest orphan = Digest::Sha256Of("a file without a record");
  {
    auto st = OpenStore(dir.str());
    PutBlob(*st, done, "complete bytes", 4);
    REQUIRE(st->BeginBlob(pending, 4).ok());
    REQUIRE(st->PutChunk(pending, 0, "abcd").ok());
    // The process dies here: no commit, no drop.
  }
  dir.Write("blobs/sha256/" + orphan.hex().substr(0, 2) + "/" + orphan.hex(), "left by a crash");
  dir.Write("blobs/sha256/zz/junk", "not a digest");
  REQUIRE(std::filesystem::exists(FileOf(dir, pending)));
  int cleaned = -1;
  auto st = OpenStore(dir.str(), &cleaned);
  CHECK(cleaned == 3);  // the pending blob, the orphan and the junk
  CHECK_FALSE(std::filesystem::exists(FileOf(dir, pending)));
  CHECK_FALSE(std::filesystem::exists(FileOf(dir, orphan)));
  CHECK_FALSE(std::filesystem::exists(dir.str() + "/blobs/sha256/zz/junk"));
  auto m = st->GetBlobMeta(pending);
  REQUIRE(m.ok());
  CHECK_FALSE(m->has_value());
  // An orphan file is never served: it has no record.
  rocksdb::PinnableSlice c;
  CHECK(st->ReadChunk(orphan, 0, &c).code() == Code::kNotFound);
  CHECK(ReadBlob(*st, done, 4) == "complete bytes");
  CHECK(st->Stats().blobs == 1);
  // The cut-short blob can be fetched again from the start.
  PutBlob(*st, pending, "fetched again", 4);
  CHECK(ReadBlob(*st, pending, 4) == "fetched again");
}

TEST_CASE("proxy: store reads and drops blobs an older version wrote into RocksDB chunks") {
  TempDir dir;
  const Digest old_blob = Digest::Sha256Of("cached before the blob files");
  {
    StoreOptions chunks_in_rocksdb;
    chunks_in_rocksdb.blob_files = false;
    auto st = OpenStore(dir.str(), nullptr, chunks_in_rocksdb);
    PutBlob(*st, old_blob, "cached before the blob files", 8);
    auto m = st->GetBlobMeta(old_blob);
    REQUIRE(m.ok());
    REQUIRE(m->has_value());
    CHECK_FALSE((*m)->in_file);
  }
  CHECK_FALSE(std::filesystem::exists(FileOf(dir, old_blob)));
  int cleaned = -1;
  auto st = OpenStore(dir.str(), &cleaned);
  CHECK(cleaned == 0);
  CHECK(ReadBlob(*st, old_blob, 4) == "cached before the blob files");
  CHECK(st->Stats().blobs == 1);
  // A new blob beside it goes to a file.
  const Digest fresh = Digest::Sha256Of("new");
  PutBlob(*st, fresh, "new bytes", 8);
  CHECK(std::filesystem::exists(FileOf(dir, fresh)));
  REQUIRE(st->DropBlob(old_blob).ok());
  rocksdb::PinnableSlice c;
  CHECK(st->ReadChunk(old_blob, 0, &c).code() == Code::kNotFound);
  CHECK(ReadBlob(*st, fresh, 2) == "new bytes");
}

TEST_CASE("proxy: store never serves a damaged file short: a chunk past a truncation is an IO_ERROR") {
  TempDir dir;
  auto st = OpenStore(dir.str());
  const std::string data = "0123456789abcdefghij";
  const Digest d = Digest::Sha256Of(data);
  PutBlob(*st, d, data, 8);
  std::filesystem::resize_file(FileOf(dir, d), 10);  // someone cut the file
  rocksdb::PinnableSlice c;
  REQUIRE(st->ReadChunk(d, 0, &c).ok());
  CHECK(c.ToString() == "01234567");
  rocksdb::PinnableSlice c1, c2;
  CHECK(st->ReadChunk(d, 1, &c1).code() == Code::kIoError);  // 2 of its 8 bytes left
  CHECK(st->ReadChunk(d, 2, &c2).code() == Code::kIoError);  // none of its 4
  std::filesystem::remove(FileOf(dir, d));
  rocksdb::PinnableSlice c3;
  CHECK(st->ReadChunk(d, 0, &c3).code() == Code::kNotFound);
}

TEST_CASE("proxy: store commits no blob whose file does not hold its size") {
  TempDir dir;
  auto st = OpenStore(dir.str());
  const Digest d = Digest::Sha256Of("short");
  REQUIRE(st->BeginBlob(d, 4).ok());
  REQUIRE(st->PutChunk(d, 0, "abcd").ok());
  // Chunk 1 never written: the commit says 12 bytes, the file holds 4 + 4 at 8.
  CHECK(st->CommitBlob(d, 2, "ijkl", 13, 4).code() == Code::kIoError);
  auto m = st->GetBlobMeta(d);
  REQUIRE(m.ok());
  REQUIRE(m->has_value());
  CHECK_FALSE((*m)->complete);
  CHECK(st->Stats().blobs == 0);
}

}  // namespace
