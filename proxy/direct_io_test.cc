// The cache's flushes write with O_DIRECT when asked (StoreOptions) and the
// file system takes it (proxy/direct_io.h); buffered otherwise.
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

TEST_CASE("direct io: flushes are buffered unless O_DIRECT is asked for, then used where it works") {
  portcullis::testing::TempDir dir;
  const bool works = DirectWritesWork(dir.str());
  {
    auto store = testing::OpenStore(dir.str() + "/default");
    CHECK_FALSE(store->direct_flush());
  }
  StoreOptions direct;
  direct.direct_writes = true;
  auto store = testing::OpenStore(dir.str() + "/direct", nullptr, direct);
  CHECK(store->direct_flush() == works);  // the store uses what the probe found
}

TEST_CASE("direct io: a blob flushed in many pieces reads back byte for byte, checksums verified") {
  for (const bool direct : {false, true}) {
    CAPTURE(direct);
    portcullis::testing::TempDir dir;
    const bool works = DirectWritesWork(dir.str());
    StoreOptions options;
    options.direct_writes = direct;
    std::string bytes;
    {
      auto store = testing::OpenStore(dir.str(), nullptr, options);
      CHECK(store->direct_flush() == (direct && works));
      // 40 chunks of 1 MiB minus 1 byte: unaligned pieces, more than two 16 MiB memtables.
      const size_t cb = (1u << 20) - 1;
      for (size_t i = 0; i < 40 * cb + 1234; ++i) bytes.push_back(static_cast<char>((i * 2654435761u) >> 11));
      const oci::Digest d = oci::Digest::Sha256Of(bytes);
      REQUIRE(store->BeginBlob(d, cb).ok());
      for (uint64_t i = 0; i < 40; ++i) REQUIRE(store->PutChunk(d, i, std::string_view(bytes).substr(i * cb, cb)).ok());
      REQUIRE(store->CommitBlob(d, 40, std::string_view(bytes).substr(40 * cb), bytes.size(), cb).ok());
    }
    // Reopened: the bytes come from the files, not from memory.
    auto store = testing::OpenStore(dir.str(), nullptr, options);
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
}

}  // namespace
}  // namespace portcullis::proxy
