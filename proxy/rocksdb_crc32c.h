// CRC32c for RocksDB at the speed of the CPU's instruction.
//
// RocksDB checksums everything it writes and verifies it on every read: blob
// records (a cached layer's bytes), SST blocks and WAL records, all CRC32c.
// Debian's librocksdb is built portable, without SSE4.2, so its CRC32c is a
// table-driven loop: 0.20 CPU-s for a 200 MiB layer on this project's bench
// machine, a fifth of the proxy's CPU in a cold pull. The build links the
// static librocksdb.a with `--wrap=rocksdb::crc32c::Extend` (proxy/CMakeLists.txt),
// which sends every RocksDB call of that function to the one in
// rocksdb_crc32c.cc: Intel ISA-L's crc32_iscsi, which picks the CPU's
// SSE4.2/PCLMUL code at run time (and a table where the CPU has neither):
// 0.02 CPU-s for the same 200 MiB. It is the same function (the Castagnoli
// polynomial, RocksDB's conventions), so data written by either reads with the
// other; rocksdb_crc32c_test.cc compares the two on random input.
//
// Thread-safe: pure functions (the call count is per thread).
#pragma once

#include <cstdint>

namespace portcullis::proxy {

// "isa-l": RocksDB's CRC32c calls reach ISA-L (the link wrapped them).
// Used in the startup log line.
const char* RocksCrc32cImplementation();

// Calls RocksDB made to the CRC32c on the calling thread so far (tests: proof
// that RocksDB's own code, not just ours, reaches the wrapped function).
uint64_t RocksCrc32cCallsOnThisThread();

}  // namespace portcullis::proxy
