// Where a key passphrase comes from, in order:
//   1. the environment variable PORTCULLIS_PASSWORD, if set (even to "");
//   2. else COSIGN_PASSWORD, if set (even to "");
//   3. else the --passphrase-file named by the caller: its first line, with the
//      trailing newline ("\n" or "\r\n") stripped; an empty file is an empty passphrase;
//   4. else a prompt on stderr, read from stdin with echo off, when stdin is a TTY
//      (asked twice and compared when `confirm` is set).
// An empty passphrase is used only when given explicitly by 1-3; an empty answer
// at the prompt is refused. Passphrases are never logged; buffers are wiped.
#pragma once

#include <string>

#include "keys/secret.h"
#include "oci/status.h"

namespace portcullis::keys {

struct PassphraseRequest {
  std::string passphrase_file;  // from --passphrase-file; empty when not given
  bool confirm = false;         // at a prompt, ask twice (new keys)
  std::string prompt = "Enter password for private key: ";
};

// The passphrase by the order above. INVALID_ARGUMENT "no passphrase: set
// PORTCULLIS_PASSWORD or COSIGN_PASSWORD, or pass --passphrase-file" when no source
// is available; other errors name the problem (unreadable file, mismatched
// confirmation, empty answer at the prompt).
StatusOr<SecretBytes> GetPassphrase(const PassphraseRequest& request);

// Source 3 alone: the first line of `path`, trailing newline stripped.
StatusOr<SecretBytes> ReadPassphraseFile(const std::string& path);

}  // namespace portcullis::keys
