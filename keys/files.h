// Small-file helpers for key files: whole-file reads, and atomic writes that
// never clobber an existing file unless asked to.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "keys/secret.h"
#include "oci/status.h"

namespace portcullis::keys {

// Reads a whole file of at most `max_bytes`. NOT_FOUND when it does not exist,
// INVALID_ARGUMENT when larger than max_bytes, IO_ERROR otherwise; all name the path.
StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max_bytes = 1 << 20);

// ReadSmallFile for files holding secrets (unencrypted keys): the contents go
// straight into a wiped buffer sized from fstat, so no partial copies are left in
// freed memory.
StatusOr<SecretBytes> ReadSecretFile(const std::string& path, size_t max_bytes = 1 << 20);

// Writes `data` to `path` atomically: a temporary file in the same directory is
// created with permissions `mode` (umask not applied), written, fsync'd, then
// moved into place, so readers see the old file or the whole new one. When
// `overwrite` is false and `path` exists, returns ALREADY_EXISTS and leaves it
// untouched (the no-clobber check is atomic where the filesystem supports
// link(2)). On any error the temporary file is removed.
Status WriteFileAtomically(const std::string& path, std::string_view data, mode_t mode, bool overwrite);

// True when `path` exists (any file type, including a dangling symlink).
bool PathExists(const std::string& path);

}  // namespace portcullis::keys
