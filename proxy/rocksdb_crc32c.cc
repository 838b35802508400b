// Compiled into each executable that links portcullis_proxy (an INTERFACE
// source, proxy/CMakeLists.txt), next to the `--wrap` link option: an object
// in a static library would be linked only if something before RocksDB on the
// link line needed it.
#include "proxy/rocksdb_crc32c.h"

#include <isa-l/crc.h>
#include <rocksdb/file_checksum.h>

#include <climits>
#include <cstddef>
#include <memory>
#include <string>

namespace {
thread_local uint64_t calls = 0;
}  // namespace

// RocksDB's `uint32_t rocksdb::crc32c::Extend(uint32_t init_crc, const char*
// data, size_t n)`: the CRC32c of the bytes whose CRC32c is `init_crc`
// followed by `data`. `--wrap` renames RocksDB's references to it to
// __wrap_<mangled name>, defined here with C linkage. ISA-L's crc32_iscsi
// leaves out the initial and final inversion that RocksDB's convention (and
// RFC 3720's) includes: hence the two `~`.
extern "C" uint32_t __wrap__ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t init_crc, const char* data, size_t n) {
  ++calls;
  uint32_t crc = ~init_crc;
  auto* p = reinterpret_cast<unsigned char*>(const_cast<char*>(data));  // ISA-L only reads it
  constexpr size_t kMaxPart = size_t{1} << 30;                          // ISA-L takes an int length
  while (n > 0) {
    const size_t part = n < kMaxPart ? n : kMaxPart;
    crc = crc32_iscsi(p, static_cast<int>(part), crc);
    p += part;
    n -= part;
  }
  return ~crc;
}

namespace portcullis::proxy {

const char* RocksCrc32cImplementation() {
  // Asks RocksDB's own code for a CRC32c and looks whether it came here.
  static const char* const name = [] {
    const uint64_t before = calls;
    rocksdb::FileChecksumGenContext ctx;
    std::unique_ptr<rocksdb::FileChecksumGenerator> gen =
        rocksdb::GetFileChecksumGenCrc32cFactory()->CreateFileChecksumGenerator(ctx);
    if (!gen) return "unknown";
    gen->Update("123456789", 9);
    gen->Finalize();
    // RFC 3720's check value, big-endian as RocksDB encodes file checksums.
    if (gen->GetChecksum() != std::string("\xe3\x06\x92\x83", 4)) return "wrong values (a broken CRC32c)";
    return calls > before ? "isa-l" : "rocksdb (software)";
  }();
  return name;
}

uint64_t RocksCrc32cCallsOnThisThread() { return calls; }

}  // namespace portcullis::proxy
