// The passphrase-encrypted container cosign uses for private keys (go-tuf /
// securesystemslib "encrypted" format): scrypt derives a 32-byte key from the
// passphrase, NaCl secretbox seals the plaintext. The document is JSON:
//
//   {"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"<b64 32 bytes>"},
//    "cipher":{"name":"nacl/secretbox","nonce":"<b64 24 bytes>"},"ciphertext":"<b64>"}
//
// (one line, this field order, as Go's json.Marshal writes it), the format of
// cosign's encrypted private keys (sigstore/cosign pkg/cosign/keys.go).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "keys/secret.h"
#include "oci/status.h"

namespace portcullis::keys {

// PEM types of an encrypted private key: written, and the older one also read.
inline constexpr std::string_view kSigstorePrivateKeyPemType = "ENCRYPTED SIGSTORE PRIVATE KEY";
inline constexpr std::string_view kCosignPrivateKeyPemType = "ENCRYPTED COSIGN PRIVATE KEY";

struct ScryptParams {
  uint64_t n = 65536;
  uint64_t r = 8;
  uint64_t p = 1;
};

// The parameters cosign accepts: N in {32768, 65536, 131072}, r = 8, p = 1.
// Anything else is INVALID_ARGUMENT naming the parameter.
Status CheckScryptParams(const ScryptParams& params);

// Encrypts `plaintext` under `passphrase` with fresh random salt and nonce and
// returns the JSON document above. `params` must pass CheckScryptParams.
StatusOr<std::string> EncryptToJson(std::string_view plaintext, std::string_view passphrase,
                                    const ScryptParams& params = ScryptParams());

// Decrypts a JSON document written by EncryptToJson, cosign or go-tuf. Errors
// (INVALID_ARGUMENT) name the problem: bad JSON, a missing or mistyped field,
// unknown kdf or cipher, unsupported scrypt parameters, bad salt or nonce, and
// UNAUTHORIZED "wrong passphrase or corrupted key: decryption failed" when the
// secretbox does not authenticate (wrong passphrase, or tampered salt/nonce/ciphertext).
// The derived key is wiped before returning.
StatusOr<SecretBytes> DecryptFromJson(std::string_view json, std::string_view passphrase);

// The scrypt parameters named in an encrypted JSON document, without decrypting.
StatusOr<ScryptParams> ReadScryptParams(std::string_view json);

}  // namespace portcullis::keys
