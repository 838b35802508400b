#include "verifier/sigstore/crypto.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cctype>
#include <cstdio>
#include <ctime>

#include "oci/base64.h"

namespace portcullis::verifier::sigstore {

namespace {

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

std::string Digest(const char* name, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(data.data(), data.size(), out, &n, EVP_get_digestbyname(name), nullptr) != 1) return {};
  return std::string(reinterpret_cast<const char*>(out), n);
}

PKey Adopt(EVP_PKEY* p) { return PKey(p, EVP_PKEY_free); }
Cert AdoptCert(X509* c) { return Cert(c, X509_free); }

}  // namespace

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

StatusOr<PKey> ParsePublicKeyDer(std::string_view der, bool allow_pkcs1_rsa) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  EVP_PKEY* k = d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size()));
  if (k != nullptr && p == reinterpret_cast<const unsigned char*>(der.data()) + der.size()) return Adopt(k);
  EVP_PKEY_free(k);
  ERR_clear_error();
  if (allow_pkcs1_rsa) {
    p = reinterpret_cast<const unsigned char*>(der.data());
    k = d2i_PublicKey(EVP_PKEY_RSA, nullptr, &p, static_cast<long>(der.size()));
    if (k != nullptr && p == reinterpret_cast<const unsigned char*>(der.data()) + der.size()) return Adopt(k);
    EVP_PKEY_free(k);
    ERR_clear_error();
  }
  return Status::InvalidArgument("not a DER public key");
}

StatusOr<PKey> ParsePublicKeyPem(std::string_view pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Status::Internal("BIO_new_mem_buf failed");
  EVP_PKEY* k = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (k == nullptr) {
    ERR_clear_error();
    return Status::InvalidArgument("not a PEM public key");
  }
  return Adopt(k);
}

StatusOr<std::string> PublicKeyDer(const PKey& key) {
  unsigned char* out = nullptr;
  int n = i2d_PUBKEY(key.get(), &out);
  if (n <= 0) return Status::Internal("i2d_PUBKEY: " + OpenSslError());
  std::string der(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  OPENSSL_free(out);
  return der;
}

StatusOr<Cert> ParseCertDer(std::string_view der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  X509* c = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  if (c == nullptr || p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    X509_free(c);
    ERR_clear_error();
    return Status::InvalidArgument("not a DER certificate");
  }
  return AdoptCert(c);
}

StatusOr<Cert> ParseCertPem(std::string_view pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Status::Internal("BIO_new_mem_buf failed");
  X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (c == nullptr) {
    ERR_clear_error();
    return Status::InvalidArgument("not a PEM certificate");
  }
  return AdoptCert(c);
}

StatusOr<std::vector<Cert>> ParseCertsPem(std::string_view pem, size_t max) {
  if (pem.size() > (16u << 20)) return Status::InvalidArgument("PEM text is too large");
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Status::Internal("BIO_new_mem_buf failed");
  std::vector<Cert> out;
  ERR_clear_error();
  while (true) {
    X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (c == nullptr) {
      unsigned long e = ERR_peek_last_error();
      ERR_clear_error();
      if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) return out;
      return Status::InvalidArgument("PEM certificate " + std::to_string(out.size() + 1) + " does not parse");
    }
    out.push_back(AdoptCert(c));
    if (out.size() > max) return Status::InvalidArgument("more than " + std::to_string(max) + " PEM certificates");
  }
}

StatusOr<std::string> CertDer(const Cert& cert) {
  unsigned char* out = nullptr;
  int n = i2d_X509(cert.get(), &out);
  if (n <= 0) return Status::Internal("i2d_X509: " + OpenSslError());
  std::string der(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  OPENSSL_free(out);
  return der;
}

std::string Sha256(std::string_view data) { return Digest("SHA256", data); }
std::string Sha384(std::string_view data) { return Digest("SHA384", data); }
std::string Sha512(std::string_view data) { return Digest("SHA512", data); }

std::string Hex(std::string_view bytes) {
  static const char* k = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(k[c >> 4]);
    out.push_back(k[c & 15]);
  }
  return out;
}

StatusOr<std::string> HashNameFor(const PKey& key) {
  switch (EVP_PKEY_get_base_id(key.get())) {
    case EVP_PKEY_ED25519:
      return std::string();
    case EVP_PKEY_RSA:
      return std::string("sha256");
    case EVP_PKEY_EC: {
      char group[64] = {0};
      size_t len = 0;
      if (EVP_PKEY_get_group_name(key.get(), group, sizeof group, &len) != 1) break;
      std::string_view g(group, len);
      if (g == "prime256v1" || g == "P-256") return std::string("sha256");
      if (g == "secp384r1" || g == "P-384") return std::string("sha384");
      if (g == "secp521r1" || g == "P-521") return std::string("sha512");
      return Status::Unsupported("unsupported: ECDSA curve " + std::string(g));
    }
    default:
      break;
  }
  ERR_clear_error();
  return Status::Unsupported("unsupported: key type (want ECDSA P-256/P-384/P-521, Ed25519 or RSA)");
}

Status VerifySignature(const PKey& key, std::string_view message, std::string_view signature) {
  PC_ASSIGN_OR_RETURN(std::string hash, HashNameFor(key));
  if (!hash.empty()) {
    std::string digest = Digest(hash == "sha256" ? "SHA256" : hash == "sha384" ? "SHA384" : "SHA512", message);
    return VerifyPrehashed(key, hash, digest, signature);
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) {
    return Status::Internal("EVP_DigestVerifyInit: " + OpenSslError());
  }
  int rc = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                            reinterpret_cast<const unsigned char*>(message.data()), message.size());
  ERR_clear_error();
  if (rc != 1) return Status::Denied("signature does not verify");
  return Status::Ok();
}

Status VerifyPrehashed(const PKey& key, std::string_view hash_name, std::string_view digest,
                       std::string_view signature) {
  if (EVP_PKEY_get_base_id(key.get()) == EVP_PKEY_ED25519) {
    return Status::Unsupported("unsupported: an Ed25519 signature needs the artifact itself, not its digest");
  }
  const EVP_MD* md = EVP_get_digestbyname(std::string(hash_name).c_str());
  if (md == nullptr || static_cast<size_t>(EVP_MD_get_size(md)) != digest.size()) {
    return Status::InvalidArgument("digest does not match hash " + std::string(hash_name));
  }
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new(key.get(), nullptr));
  if (!ctx || EVP_PKEY_verify_init(ctx.get()) != 1 || EVP_PKEY_CTX_set_signature_md(ctx.get(), md) != 1) {
    return Status::Internal("EVP_PKEY_verify_init: " + OpenSslError());
  }
  if (EVP_PKEY_get_base_id(key.get()) == EVP_PKEY_RSA &&
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1) {
    return Status::Internal("RSA padding: " + OpenSslError());
  }
  int rc = EVP_PKEY_verify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                           reinterpret_cast<const unsigned char*>(digest.data()), digest.size());
  ERR_clear_error();
  if (rc != 1) return Status::Denied("signature does not verify");
  return Status::Ok();
}

StatusOr<std::string> DecodeBase64(std::string_view s, std::string_view what) {
  if (s.size() > (64u << 20)) return Status::InvalidArgument(std::string(what) + " is too large");
  std::string padded(s);
  while (padded.size() % 4 != 0) padded.push_back('=');
  auto out = oci::Base64Decode(padded);
  if (!out) return Status::InvalidArgument(std::string(what) + " is not valid base64");
  return std::move(*out);
}

StatusOr<int64_t> ParseRfc3339(std::string_view s) {
  auto bad = [&] { return Status::InvalidArgument("not an RFC 3339 time: \"" + std::string(s.substr(0, 40)) + "\""); };
  // YYYY-MM-DDTHH:MM:SS
  if (s.size() < 20) return bad();
  auto num = [&](size_t pos, size_t n, int& out) {
    out = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int y, mo, d, h, mi, se;
  if (!num(0, 4, y) || s[4] != '-' || !num(5, 2, mo) || s[7] != '-' || !num(8, 2, d) ||
      (s[10] != 'T' && s[10] != 't') || !num(11, 2, h) || s[13] != ':' || !num(14, 2, mi) || s[16] != ':' ||
      !num(17, 2, se)) {
    return bad();
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return bad();
  size_t i = 19;
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t start = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    if (i == start || i - start > 12) return bad();
  }
  int64_t offset = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
    int oh, om;
    if (!num(i + 1, 2, oh) || !num(i + 4, 2, om) || oh > 23 || om > 59) return bad();
    offset = (s[i] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    i += 6;
  } else {
    return bad();
  }
  if (i != s.size()) return bad();
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  return static_cast<int64_t>(timegm(&tm)) - offset;
}

std::string FormatTime(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace portcullis::verifier::sigstore
