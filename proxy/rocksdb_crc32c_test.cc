// RocksDB's CRC32c calls reach ISA-L's (proxy/rocksdb_crc32c.h), and the two
// compute the same values, so a cache written by either reads with the other.
#include "proxy/rocksdb_crc32c.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>

#include "oci/digest.h"
#include "proxy/store_test_util.h"
#include "tests/test_util.h"

// RocksDB's own CRC32c (the link's --wrap makes __real_ name it).
extern "C" uint32_t __real__ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t init_crc, const char* data, size_t n);
extern "C" uint32_t __wrap__ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t init_crc, const char* data, size_t n);

namespace portcullis::proxy {
namespace {

uint32_t Ours(uint32_t init, const std::string& s) { return __wrap__ZN7rocksdb6crc32c6ExtendEjPKcm(init, s.data(), s.size()); }
uint32_t Theirs(uint32_t init, const std::string& s) { return __real__ZN7rocksdb6crc32c6ExtendEjPKcm(init, s.data(), s.size()); }

TEST_CASE("rocksdb crc32c: RocksDB's own code reaches ISA-L's CRC32c") {
  CHECK(std::string(RocksCrc32cImplementation()) == "isa-l");
}

TEST_CASE("rocksdb crc32c: ISA-L's values are RocksDB's, for any input, start value and alignment") {
  // RFC 3720 B.4's check values.
  CHECK(Ours(0, std::string(32, '\0')) == 0x8a9136aau);
  CHECK(Ours(0, std::string(32, '\xff')) == 0x62a8ab43u);
  CHECK(Ours(0, "123456789") == 0xe3069283u);
  CHECK(Ours(0, "") == 0u);
  std::mt19937_64 rng(20261130);
  std::string buf(3 << 20, '\0');
  for (auto& c : buf) c = static_cast<char>(rng());
  for (int i = 0; i < 500; ++i) {
    const size_t off = rng() % 64;
    const size_t n = i < 100 ? static_cast<size_t>(i) : rng() % (buf.size() - off);
    const uint32_t init = i % 3 == 0 ? 0u : static_cast<uint32_t>(rng());
    const std::string part = buf.substr(off, n);
    REQUIRE_MESSAGE(Ours(init, part) == Theirs(init, part), "length " << n << ", offset " << off);
  }
  // Extending is the CRC of the concatenation, as RocksDB relies on.
  const std::string a = buf.substr(0, 1000), b = buf.substr(1000, 5000);
  CHECK(Ours(Ours(0, a), b) == Theirs(0, a + b));
}

TEST_CASE("rocksdb crc32c: a cached chunk read with verification is checked by ISA-L's CRC32c") {
  portcullis::testing::TempDir dir;
  StoreOptions chunks_in_rocksdb;  // as older versions cached blobs (new ones go to files)
  chunks_in_rocksdb.blob_files = false;
  auto store = testing::OpenStore(dir.str(), nullptr, chunks_in_rocksdb);
  const std::string bytes(64 * 1024, 'x');
  const oci::Digest d = oci::Digest::Sha256Of(bytes);
  const std::string head = bytes.substr(0, 32 * 1024), tail = bytes.substr(32 * 1024);
  REQUIRE(store->BeginBlob(d, head.size()).ok());
  REQUIRE(store->PutChunk(d, 0, head).ok());
  REQUIRE(store->CommitBlob(d, 1, tail, bytes.size(), head.size()).ok());
  const uint64_t before = RocksCrc32cCallsOnThisThread();
  rocksdb::PinnableSlice chunk;
  REQUIRE(store->ReadChunk(d, 0, &chunk, /*verify=*/true).ok());
  CHECK(chunk.ToString() == head);
  CHECK(RocksCrc32cCallsOnThisThread() > before);
}

}  // namespace
}  // namespace portcullis::proxy
