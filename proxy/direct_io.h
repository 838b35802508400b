// Whether a folder's file system takes O_DIRECT writes.
//
// With `--cache-writes direct` the cache writes layer bytes (blob files,
// RocksDB's flushes) with O_DIRECT where it can (store.h, StoreOptions):
// without it, each byte is copied into the page cache on the way to the disk,
// and on the bench machine that copy alone cost 0.1-0.9 CPU-s per 200 MiB
// layer. Some file systems refuse O_DIRECT (tmpfs before Linux 6.6, some FUSE
// and network file systems), and RocksDB would then fail every flush; so the
// store asks first.
//
// Thread-safe. Never throws.
#pragma once

#include <string>

namespace portcullis::proxy {

// Creates a probe file in `dir`, writes one aligned 4 KiB block to it with
// O_DIRECT, and removes it. True when the open and the write both succeeded;
// false otherwise (including when `dir` does not exist or is not writable).
bool DirectWritesWork(const std::string& dir);

}  // namespace portcullis::proxy
