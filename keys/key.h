// Signing keys as cosign uses them: PrivateKey / PublicKey wrap an OpenSSL
// EVP_PKEY (move-only; copying is deleted so key material is never duplicated by
// accident). Supported: ECDSA P-256 and P-384, Ed25519, RSA (>= 2048 bits).
//
// Signatures, matching cosign / sigstore's default for each key type:
//   ecdsa-p256  ASN.1 DER ECDSA over SHA-256 of the payload
//   ecdsa-p384  ASN.1 DER ECDSA over SHA-384 of the payload
//   ed25519     pure Ed25519 over the payload bytes (not Ed25519ph)
//   rsa         RSASSA-PKCS1-v1_5 with SHA-256
//
// Private keys on disk are PEM "ENCRYPTED SIGSTORE PRIVATE KEY" holding the
// encrypted_key.h JSON around the PKCS#8 DER; public keys are PEM "PUBLIC KEY"
// (PKIX SubjectPublicKeyInfo). Instances are immutable after construction and
// safe to use from several threads at once.
#pragma once

#include <string>
#include <string_view>

#include "keys/encrypted_key.h"
#include "keys/secret.h"
#include "oci/status.h"

struct evp_pkey_st;  // OpenSSL's EVP_PKEY

namespace portcullis::keys {

enum class KeyType { kEcdsaP256, kEcdsaP384, kEd25519, kRsa };

// "ecdsa-p256", "ecdsa-p384", "ed25519", "rsa".
std::string_view KeyTypeName(KeyType type);
// Inverse of KeyTypeName; INVALID_ARGUMENT naming the accepted names otherwise.
StatusOr<KeyType> ParseKeyType(std::string_view name);

class PublicKey {
 public:
  // Parses PEM "PUBLIC KEY" (the first PEM block in `pem`). Errors name the
  // problem: not PEM, another PEM type, bad DER, an unsupported algorithm or curve.
  static StatusOr<PublicKey> FromPem(std::string_view pem);
  // Reads and parses a PEM "PUBLIC KEY" file; NOT_FOUND / IO_ERROR name the path.
  static StatusOr<PublicKey> FromPemFile(const std::string& path);
  // Parses SubjectPublicKeyInfo DER.
  static StatusOr<PublicKey> FromDer(std::string_view der);

  PublicKey(PublicKey&& o) noexcept : pkey_(o.pkey_), type_(o.type_) { o.pkey_ = nullptr; }
  PublicKey& operator=(PublicKey&& o) noexcept;
  PublicKey(const PublicKey&) = delete;
  PublicKey& operator=(const PublicKey&) = delete;
  ~PublicKey();

  KeyType type() const { return type_; }
  // PEM "PUBLIC KEY", byte-identical to what cosign writes for the same key.
  StatusOr<std::string> Pem() const;
  // SubjectPublicKeyInfo DER.
  StatusOr<std::string> Der() const;

  // OK when `signature` is a valid signature over `payload` for this key (scheme
  // as in the table above). DENIED "signature does not verify" otherwise, including
  // malformed signatures.
  Status Verify(std::string_view payload, std::string_view signature) const;

 private:
  PublicKey(evp_pkey_st* pkey, KeyType type) : pkey_(pkey), type_(type) {}
  friend class PrivateKey;
  evp_pkey_st* pkey_;
  KeyType type_;
};

class PrivateKey {
 public:
  // A fresh random key. ecdsa-p256, ecdsa-p384 and ed25519 are supported; rsa is
  // UNSUPPORTED (import one instead).
  static StatusOr<PrivateKey> Generate(KeyType type);

  // Parses PKCS#8 PrivateKeyInfo DER (unencrypted). Trailing bytes are an error.
  static StatusOr<PrivateKey> FromPkcs8Der(std::string_view der);

  // Parses an unencrypted private key PEM: "PRIVATE KEY" (PKCS#8), "EC PRIVATE KEY"
  // (SEC1) or "RSA PRIVATE KEY" (PKCS#1); other blocks before it (such as
  // "EC PARAMETERS") are skipped. Encrypted PEMs are refused with a message
  // naming their type; OpenSSL never prompts.
  static StatusOr<PrivateKey> FromUnencryptedPem(std::string_view pem);

  // Decrypts a cosign private key PEM ("ENCRYPTED SIGSTORE PRIVATE KEY" or
  // "ENCRYPTED COSIGN PRIVATE KEY"). Errors name the problem: not PEM or truncated,
  // an unknown PEM type, the DecryptFromJson errors (wrong passphrase is
  // UNAUTHORIZED), a plaintext that is not PKCS#8, an unsupported key type.
  static StatusOr<PrivateKey> FromEncryptedPem(std::string_view pem, std::string_view passphrase);
  // FromEncryptedPem on the contents of a file; NOT_FOUND / IO_ERROR name the path.
  static StatusOr<PrivateKey> FromEncryptedPemFile(const std::string& path, std::string_view passphrase);

  PrivateKey(PrivateKey&& o) noexcept : pkey_(o.pkey_), type_(o.type_) { o.pkey_ = nullptr; }
  PrivateKey& operator=(PrivateKey&& o) noexcept;
  PrivateKey(const PrivateKey&) = delete;
  PrivateKey& operator=(const PrivateKey&) = delete;
  ~PrivateKey();  // OpenSSL clears the key material when freeing it

  KeyType type() const { return type_; }

  // PKCS#8 PrivateKeyInfo DER; wiped when the result is destroyed.
  StatusOr<SecretBytes> Pkcs8Der() const;

  // The cosign encrypted PEM ("ENCRYPTED SIGSTORE PRIVATE KEY") of this key.
  // `params` must pass CheckScryptParams; the default is N=65536, r=8, p=1.
  StatusOr<std::string> ToEncryptedPem(std::string_view passphrase, const ScryptParams& params = ScryptParams()) const;

  StatusOr<PublicKey> GetPublicKey() const;
  // GetPublicKey()->Pem().
  StatusOr<std::string> PublicKeyPem() const;

  // The signature over `payload` (scheme as in the table above; raw bytes, not
  // base64).
  StatusOr<std::string> Sign(std::string_view payload) const;
  // Same as GetPublicKey()->Verify(payload, signature).
  Status Verify(std::string_view payload, std::string_view signature) const;

 private:
  PrivateKey(evp_pkey_st* pkey, KeyType type) : pkey_(pkey), type_(type) {}
  static StatusOr<PrivateKey> Adopt(evp_pkey_st* pkey);
  evp_pkey_st* pkey_;
  KeyType type_;
};

}  // namespace portcullis::keys
