// Key files (keys/): the PEM layer (DecodePem, PemTypes), unencrypted private
// key PEMs (`key import`), and the encrypted key envelope of a cosign
// "ENCRYPTED SIGSTORE PRIVATE KEY" PEM up to, not including, scrypt:
// ReadScryptParams parses the whole envelope (kdf, params, salt, cipher,
// nonce, ciphertext) exactly as DecryptFromJson does before deriving a key.
// Decryption itself is left out: scrypt at the only accepted parameters
// (N >= 32768, r = 8) costs ~0.1 s and 32 MiB per try, which would make the
// fuzzer spend its time in libsodium instead of in our parsing.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "keys/encrypted_key.h"
#include "keys/key.h"
#include "keys/pem.h"

using namespace portcullis::keys;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  (void)PemTypes(s);
  auto block = DecodePem(s);
  if (block.ok()) (void)ReadScryptParams(block->body);
  (void)ReadScryptParams(s);
  auto priv = PrivateKey::FromUnencryptedPem(s);
  if (priv.ok()) (void)priv->PublicKeyPem();
  return 0;
}
