// The cache's flushes write with O_DIRECT where the file system takes it
// (proxy/direct_io.h), and fall back to buffered writes where it does not.
#include "proxy/direct_io.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "oci/digest.h"
#include "proxy/store_test_util.h"
#include "tests/test_util.h"

namespace portcullis::proxy {
namespace {

TEST_CASE("direct io: the probe answers false for a folder it cannot write, and leaves nothing behind") {
  portcullis::testing::TempDir dir;
  CHECK_FALSE(DirectWritesWork(dir.str() + "/no/such/folder"));
  const bool works = DirectWritesWork(dir.str());
  MESSAGE("O_DIRECT writes in " << dir.str() << ": " << (works ? "yes" : "no"));
  CHECK(std::filesystem::is_empty(dir.path));
}

TEST_CASE("direct io: a blob flushed in many pieces reads back byte for byte, checksums verified") {
  portcullis::testing::TempDir dir;
  const bool works = DirectWritesWork(dir.str());
  std::string bytes;
  {
    auto store = testing::OpenStore(dir.str());
    CHECK(store->direct_flush() == works);  // the store uses what the probe found
    // 40 chunks of 1 MiB minus 1 byte: unaligned pieces, more than two 16 MiB memtables.
    const size_t cb = (1u << 20) - 1;
    for (size_t i = 0; i < 40 * cb + 1234; ++i) bytes.push_back(static_cast<char>((i * 2654435761u) >> 11));
    const oci::Digest d = oci::Digest::Sha256Of(bytes);
    REQUIRE(store->BeginBlob(d, cb).ok());
    for (uint64_t i = 0; i < 40; ++i) REQUIRE(store->PutChunk(d, i, std::string_view(bytes).substr(i * cb, cb)).ok());
    REQUIRE(store->CommitBlob(d, 40, std::string_view(bytes).substr(40 * cb), bytes.size(), cb).ok());
  }
  // Reopened: the bytes come from the files, not from memory.
  auto store = testing::OpenStore(dir.str());
  const oci::Digest d = oci::Digest::Sha256Of(bytes);
  std::string back;
  for (uint64_t i = 0; i <= 40; ++i) {
    rocksdb::PinnableSlice chunk;
    REQUIRE(store->ReadChunk(d, i, &chunk, /*verify=*/true).ok());
    back.append(chunk.data(), chunk.size());
  }
  CHECK(back.size() == bytes.size());
  CHECK(back == bytes);
}

}  // namespace
}  // namespace portcullis::proxy
