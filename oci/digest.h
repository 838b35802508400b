// Content digests ("sha256:<64 hex>", "sha512:<128 hex>") and streaming hashing.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "oci/status.h"

namespace portcullis::oci {

class Digest {
 public:
  Digest() = default;

  // Parses "algorithm:hex". Accepts sha256 (64 lowercase hex) and sha512 (128).
  // Anything else is DIGEST_INVALID with a message naming the problem.
  static StatusOr<Digest> Parse(std::string_view s);

  // SHA-256 digest of `data`.
  static Digest Sha256Of(std::string_view data);

  const std::string& algorithm() const { return algorithm_; }
  const std::string& hex() const { return hex_; }
  std::string ToString() const { return algorithm_ + ":" + hex_; }
  bool empty() const { return hex_.empty(); }

  bool operator==(const Digest& o) const = default;
  auto operator<=>(const Digest& o) const = default;

 private:
  Digest(std::string alg, std::string hex) : algorithm_(std::move(alg)), hex_(std::move(hex)) {}
  std::string algorithm_;
  std::string hex_;
};

// Incremental hash for one algorithm. Not thread-safe; one per stream.
class Hasher {
 public:
  // Hasher for "sha256" or "sha512"; nullptr for anything else.
  static std::unique_ptr<Hasher> Create(std::string_view algorithm);
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void Update(const void* data, size_t n);
  void Update(std::string_view s) { Update(s.data(), s.size()); }
  // Ends the stream; the hasher may not be updated afterwards.
  Digest Finish();

 private:
  Hasher(std::string alg, void* ctx) : algorithm_(std::move(alg)), ctx_(ctx) {}
  std::string algorithm_;
  void* ctx_;  // EVP_MD_CTX*
};

// Lowercase hex of bytes.
std::string HexEncode(const unsigned char* data, size_t n);

}  // namespace portcullis::oci
