#include "oci/digest.h"

#include <openssl/evp.h>

namespace portcullis::oci {

namespace {
bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}
}  // namespace

StatusOr<Digest> Digest::Parse(std::string_view s) {
  auto colon = s.find(':');
  if (colon == std::string_view::npos) {
    return Status::DigestInvalid("digest \"" + std::string(s.substr(0, 200)) +
                                 "\" has no algorithm (expected sha256:<64 hex>)");
  }
  std::string_view alg = s.substr(0, colon), hex = s.substr(colon + 1);
  size_t want;
  if (alg == "sha256") {
    want = 64;
  } else if (alg == "sha512") {
    want = 128;
  } else {
    return Status::DigestInvalid("unsupported digest algorithm \"" + std::string(alg.substr(0, 32)) +
                                 "\" (sha256 and sha512 are accepted)");
  }
  if (hex.size() != want || !IsLowerHex(hex)) {
    return Status::DigestInvalid("digest \"" + std::string(s.substr(0, 200)) + "\" is not " + std::string(alg) +
                                 ":<" + std::to_string(want) + " lowercase hex>");
  }
  return Digest(std::string(alg), std::string(hex));
}

Digest Digest::Sha256Of(std::string_view data) {
  auto h = Hasher::Create("sha256");
  h->Update(data);
  return h->Finish();
}

std::unique_ptr<Hasher> Hasher::Create(std::string_view algorithm) {
  const EVP_MD* md = nullptr;
  if (algorithm == "sha256") md = EVP_sha256();
  if (algorithm == "sha512") md = EVP_sha512();
  if (md == nullptr) return nullptr;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr || EVP_DigestInit_ex(ctx, md, nullptr) != 1) {
    EVP_MD_CTX_free(ctx);
    return nullptr;
  }
  return std::unique_ptr<Hasher>(new Hasher(std::string(algorithm), ctx));
}

Hasher::~Hasher() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Hasher::Update(const void* data, size_t n) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, n);
}

Digest Hasher::Finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), out, &len);
  return *Digest::Parse(algorithm_ + ":" + HexEncode(out, len));
}

std::string HexEncode(const unsigned char* data, size_t n) {
  static const char* kHex = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[data[i] >> 4];
    out[2 * i + 1] = kHex[data[i] & 15];
  }
  return out;
}

}  // namespace portcullis::oci
