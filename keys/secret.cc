#include "keys/secret.h"

#include <sodium.h>

#include <cstring>

namespace portcullis::keys {

SecretBytes::SecretBytes(const void* data, size_t n) : bytes_(n) {
  if (n != 0) std::memcpy(bytes_.data(), data, n);
}

SecretBytes& SecretBytes::operator=(SecretBytes&& o) noexcept {
  if (this != &o) {
    Wipe();
    bytes_ = std::move(o.bytes_);
    o.bytes_.clear();
  }
  return *this;
}

void SecretBytes::Truncate(size_t n) {
  if (n >= bytes_.size()) return;
  sodium_memzero(bytes_.data() + n, bytes_.size() - n);
  bytes_.resize(n);  // shrinking never reallocates
}

bool SecretBytes::Equals(const SecretBytes& o) const {
  if (size() != o.size()) return false;
  if (empty()) return true;
  return sodium_memcmp(data(), o.data(), size()) == 0;
}

void SecretBytes::Wipe() {
  // Wipe the whole allocation, including capacity left over by Truncate.
  if (bytes_.capacity() != 0) {
    bytes_.resize(bytes_.capacity());
    sodium_memzero(bytes_.data(), bytes_.size());
  }
  bytes_.clear();
}

}  // namespace portcullis::keys
