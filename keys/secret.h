// SecretBytes: a heap buffer for key material and passphrases that is wiped
// (sodium_memzero) when destroyed or overwritten. Move-only, so no stray copies
// are made by accident. Not thread-safe; one owner at a time.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace portcullis::keys {

class SecretBytes {
 public:
  SecretBytes() = default;
  // n zero bytes.
  explicit SecretBytes(size_t n) : bytes_(n) {}
  // A copy of data[0, n).
  SecretBytes(const void* data, size_t n);
  explicit SecretBytes(std::string_view s) : SecretBytes(s.data(), s.size()) {}
  ~SecretBytes() { Wipe(); }

  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  // A moved-from SecretBytes is empty (std::vector moves steal the buffer).
  SecretBytes(SecretBytes&& o) noexcept : bytes_(std::move(o.bytes_)) { o.bytes_.clear(); }
  SecretBytes& operator=(SecretBytes&& o) noexcept;

  unsigned char* data() { return bytes_.data(); }
  const unsigned char* data() const { return bytes_.data(); }
  size_t size() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }
  std::string_view view() const {
    return std::string_view(reinterpret_cast<const char*>(bytes_.data()), bytes_.size());
  }

  // Shrinks to n bytes (n <= size()), wiping the dropped tail. Never reallocates.
  void Truncate(size_t n);

  // Constant-time comparison of contents (lengths are not secret).
  bool Equals(const SecretBytes& o) const;

 private:
  void Wipe();
  std::vector<unsigned char> bytes_;
};

}  // namespace portcullis::keys
