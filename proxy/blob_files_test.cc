// Tests for proxy/blob_files.h: the layer files under the data dir, their
// chunks at their offsets, the checks at Finish, and Sweep.
#include "proxy/blob_files.h"

#include <doctest/doctest.h>

#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <new>
#include <string>
#include <thread>

#include "tests/test_util.h"

namespace {

using portcullis::Code;
using portcullis::oci::Digest;
using portcullis::proxy::BlobFiles;
using portcullis::testing::TempDir;

std::unique_ptr<BlobFiles> OpenFiles(const std::string& root, bool direct = false) {
  auto f = BlobFiles::Open(root, direct);
  REQUIRE_MESSAGE(f.ok(), f.status().ToString());
  return std::move(f).value();
}

// Up to `n` bytes of the file of `d` at `offset`.
std::string ReadAt(const BlobFiles& files, const Digest& d, uint64_t offset, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  auto st = files.Read(d, offset, out.data(), n, &got);
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  out.resize(got);
  return out;
}

std::string ReadAll(const BlobFiles& files, const Digest& d) { return ReadAt(files, d, 0, 1 << 20); }

TEST_CASE("proxy: blob files put chunks at their offsets, under <root>/<algorithm>/<2 hex>/<hex>") {
  TempDir dir;
  const std::string root = dir.str() + "/blobs";
  auto files = OpenFiles(root);
  CHECK((std::filesystem::status(root).permissions() & std::filesystem::perms::all) ==
        std::filesystem::perms::owner_all);
  const Digest d = Digest::Sha256Of("layer");
  CHECK(files->PathOf(d) == root + "/sha256/" + d.hex().substr(0, 2) + "/" + d.hex());
  CHECK_FALSE(files->IsOpen(d));
  REQUIRE(files->Create(d, 4).ok());
  CHECK(files->IsOpen(d));
  // Out of order, as nothing requires order: chunk 1, then 0, then the short last one.
  REQUIRE(files->WriteChunk(d, 1, "EFGH").ok());
  REQUIRE(files->WriteChunk(d, 0, "ABCD").ok());
  REQUIRE(files->WriteChunk(d, 2, "IJ").ok());
  // Readable before Finish (a reader behind the fetch's window reads the file).
  CHECK(ReadAll(*files, d) == "ABCDEFGHIJ");
  REQUIRE(files->Finish(d, 10).ok());
  CHECK_FALSE(files->IsOpen(d));
  CHECK(ReadAt(*files, d, 4, 4) == "EFGH");
  CHECK(ReadAt(*files, d, 8, 4) == "IJ");  // the short last chunk
  CHECK(ReadAt(*files, d, 10, 4).empty());  // at the end
  CHECK(std::filesystem::file_size(files->PathOf(d)) == 10);
}

TEST_CASE("proxy: blob files refuse what does not fit and say what is missing") {
  TempDir dir;
  auto files = OpenFiles(dir.str() + "/blobs");
  const Digest d = Digest::Sha256Of("x");
  char buf[16];
  size_t got = 99;
  CHECK(files->Read(d, 0, buf, sizeof buf, &got).code() == Code::kNotFound);
  CHECK(got == 0);
  CHECK(files->WriteChunk(d, 0, "abc").code() == Code::kIoError);  // never created
  CHECK(files->Finish(d, 3).code() == Code::kIoError);
  CHECK(files->Create(d, 0).code() == Code::kInvalidArgument);
  REQUIRE(files->Create(d, 4).ok());
  CHECK(files->WriteChunk(d, 0, "too long").code() == Code::kInvalidArgument);
  CHECK(files->WriteChunk(d, UINT64_MAX, "abcd").code() == Code::kInvalidArgument);  // offset overflow
  REQUIRE(files->WriteChunk(d, 0, "abcd").ok());
  // A size other than what the file holds: never made durable as complete.
  CHECK(files->Finish(d, 5).code() == Code::kIoError);
  CHECK(files->Finish(d, 3).code() == Code::kIoError);
  REQUIRE(files->Finish(d, 4).ok());
  // Removing is idempotent.
  REQUIRE(files->Remove(d).ok());
  CHECK_FALSE(std::filesystem::exists(files->PathOf(d)));
  CHECK(files->Remove(d).ok());
  CHECK(files->Read(d, 0, buf, sizeof buf, &got).code() == Code::kNotFound);
}

TEST_CASE("proxy: a blob file removed while its writer writes takes no more bytes") {
  TempDir dir;
  auto files = OpenFiles(dir.str() + "/blobs");
  const Digest d = Digest::Sha256Of("dropped while written");
  REQUIRE(files->Create(d, 1024).ok());
  const std::string chunk(1024, 'z');
  std::atomic<bool> failed{false};
  std::thread writer([&] {
    for (uint64_t i = 0; i < 2000 && !failed.load(); ++i) {
      if (!files->WriteChunk(d, i, chunk).ok()) failed = true;
    }
  });
  while (!std::filesystem::exists(files->PathOf(d))) std::this_thread::yield();
  REQUIRE(files->Remove(d).ok());
  writer.join();
  // The writer either finished before the remove or failed after it; either
  // way no file is left, and a later Create starts empty.
  CHECK_FALSE(std::filesystem::exists(files->PathOf(d)));
  CHECK(files->WriteChunk(d, 0, chunk).code() == Code::kIoError);
  REQUIRE(files->Create(d, 1024).ok());
  CHECK(std::filesystem::file_size(files->PathOf(d)) == 0);
}

TEST_CASE("proxy: blob files with O_DIRECT asked for write aligned chunks and unaligned ones alike") {
  TempDir dir;
  auto files = OpenFiles(dir.str() + "/blobs", /*direct=*/true);
  INFO("O_DIRECT taken by this file system: " << files->direct());
  const Digest d = Digest::Sha256Of("direct");
  REQUIRE(files->Create(d, 8192).ok());
  // An aligned full chunk (the fetch's window memory is 4 KiB aligned).
  char* aligned = static_cast<char*>(::operator new[](8192, std::align_val_t{4096}));
  for (int i = 0; i < 8192; ++i) aligned[i] = static_cast<char>('a' + i % 26);
  const std::string first(aligned, 8192);
  REQUIRE(files->WriteChunk(d, 0, std::string_view(aligned, 8192)).ok());
  ::operator delete[](aligned, std::align_val_t{4096});
  REQUIRE(files->WriteChunk(d, 1, "tail").ok());  // short and unaligned: buffered
  REQUIRE(files->Finish(d, 8196).ok());
  CHECK(ReadAt(*files, d, 0, 16384) == first + "tail");
}

TEST_CASE("proxy: blob files Sweep deletes what nothing wants and names no digest") {
  TempDir dir;
  const std::string root = dir.str() + "/blobs";
  auto files = OpenFiles(root);
  const Digest kept = Digest::Sha256Of("kept");
  const Digest orphan = Digest::Sha256Of("orphan");
  const Digest writing = Digest::Sha256Of("being written");
  for (const Digest& d : {kept, orphan}) {
    REQUIRE(files->Create(d, 4).ok());
    REQUIRE(files->WriteChunk(d, 0, "abcd").ok());
    REQUIRE(files->Finish(d, 4).ok());
  }
  REQUIRE(files->Create(writing, 4).ok());
  // Files whose path names no digest: a bad name, one in the wrong shard, one at the top.
  const std::string junk = dir.Write("blobs/sha256/ab/not-a-digest", "x");
  const Digest misplaced_d = Digest::Sha256Of("misplaced");
  const std::string wrong_shard = misplaced_d.hex().substr(0, 2) == "00" ? "01" : "00";
  const std::string misplaced = dir.Write("blobs/sha256/" + wrong_shard + "/" + misplaced_d.hex(), "x");
  const std::string top = dir.Write("blobs/stray", "x");
  int removed = -1;
  REQUIRE(files->Sweep([&](const Digest& d) { return d == kept || d == misplaced_d; }, &removed).ok());
  CHECK(removed == 4);
  CHECK(std::filesystem::exists(files->PathOf(kept)));
  CHECK(std::filesystem::exists(files->PathOf(writing)));  // open for writing: its fetch runs
  CHECK_FALSE(std::filesystem::exists(files->PathOf(orphan)));
  CHECK_FALSE(std::filesystem::exists(junk));
  CHECK_FALSE(std::filesystem::exists(misplaced));
  CHECK_FALSE(std::filesystem::exists(top));
}

}  // namespace
