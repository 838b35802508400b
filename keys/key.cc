#include "keys/key.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <memory>

#include "keys/files.h"
#include "keys/pem.h"

namespace portcullis::keys {

namespace {

constexpr std::string_view kPublicKeyPemType = "PUBLIC KEY";
constexpr int kMinRsaBits = 2048;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct P8Free {
  void operator()(PKCS8_PRIV_KEY_INFO* p) const { PKCS8_PRIV_KEY_INFO_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using P8Ptr = std::unique_ptr<PKCS8_PRIV_KEY_INFO, P8Free>;

// The oldest queued OpenSSL error as text (the queue is cleared), for messages.
std::string OpensslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// Which of our key types `pkey` is, or UNSUPPORTED naming what it is instead.
StatusOr<KeyType> Classify(EVP_PKEY* pkey) {
  switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_ED25519:
      return KeyType::kEd25519;
    case EVP_PKEY_RSA: {
      int bits = EVP_PKEY_get_bits(pkey);
      if (bits < kMinRsaBits) {
        return Status::Unsupported("RSA key of " + std::to_string(bits) + " bits is too small (minimum " +
                                   std::to_string(kMinRsaBits) + ")");
      }
      return KeyType::kRsa;
    }
    case EVP_PKEY_EC: {
      char group[80] = {0};
      size_t len = 0;
      if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &len) != 1) {
        ERR_clear_error();
        return Status::Unsupported("EC key with explicit or unknown curve parameters (named P-256 or P-384 required)");
      }
      int nid = OBJ_txt2nid(group);
      if (nid == NID_X9_62_prime256v1) return KeyType::kEcdsaP256;
      if (nid == NID_secp384r1) return KeyType::kEcdsaP384;
      return Status::Unsupported("EC curve \"" + std::string(group) + "\" is not supported (P-256 or P-384 required)");
    }
    default: {
      int id = EVP_PKEY_get_base_id(pkey);
      const char* name = OBJ_nid2sn(id);
      return Status::Unsupported(std::string("key algorithm \"") + (name != nullptr ? name : "unknown") +
                                 "\" is not supported (ECDSA P-256/P-384, Ed25519 or RSA required)");
    }
  }
}

// The digest for a key type; nullptr for Ed25519 (signs the message itself).
const EVP_MD* DigestFor(KeyType type) {
  switch (type) {
    case KeyType::kEcdsaP256:
    case KeyType::kRsa:
      return EVP_sha256();
    case KeyType::kEcdsaP384:
      return EVP_sha384();
    case KeyType::kEd25519:
      return nullptr;
  }
  return nullptr;
}

// Forces PKCS#1 v1.5 padding for RSA (OpenSSL's default, stated explicitly).
Status SetPadding(EVP_PKEY_CTX* pctx, KeyType type) {
  if (type != KeyType::kRsa) return Status::Ok();
  if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
    return Status::Internal("setting RSA padding: " + OpensslError());
  }
  return Status::Ok();
}

StatusOr<std::string> PublicDer(EVP_PKEY* pkey) {
  int len = i2d_PUBKEY(pkey, nullptr);
  if (len <= 0) return Status::Internal("encoding public key: " + OpensslError());
  std::string der(static_cast<size_t>(len), '\0');
  unsigned char* p = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_PUBKEY(pkey, &p) != len) return Status::Internal("encoding public key: " + OpensslError());
  return der;
}

Status VerifyWith(EVP_PKEY* pkey, KeyType type, std::string_view payload, std::string_view signature) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) return Status::Internal("EVP_MD_CTX_new failed");
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestVerifyInit(ctx.get(), &pctx, DigestFor(type), nullptr, pkey) != 1) {
    return Status::Internal("initializing verification: " + OpensslError());
  }
  PC_RETURN_IF_ERROR(SetPadding(pctx, type));
  int rc = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                            reinterpret_cast<const unsigned char*>(payload.data()), payload.size());
  ERR_clear_error();
  if (rc != 1) {
    return Status::Denied("signature does not verify with the " + std::string(KeyTypeName(type)) + " public key");
  }
  return Status::Ok();
}

}  // namespace

std::string_view KeyTypeName(KeyType type) {
  switch (type) {
    case KeyType::kEcdsaP256:
      return "ecdsa-p256";
    case KeyType::kEcdsaP384:
      return "ecdsa-p384";
    case KeyType::kEd25519:
      return "ed25519";
    case KeyType::kRsa:
      return "rsa";
  }
  return "unknown";
}

StatusOr<KeyType> ParseKeyType(std::string_view name) {
  for (KeyType t : {KeyType::kEcdsaP256, KeyType::kEcdsaP384, KeyType::kEd25519, KeyType::kRsa}) {
    if (name == KeyTypeName(t)) return t;
  }
  return Status::InvalidArgument("unknown key type \"" + std::string(name.substr(0, 64)) +
                                 "\" (accepted: ecdsa-p256, ecdsa-p384, ed25519, rsa)");
}

// ---- PublicKey ----

PublicKey& PublicKey::operator=(PublicKey&& o) noexcept {
  if (this != &o) {
    EVP_PKEY_free(pkey_);
    pkey_ = o.pkey_;
    type_ = o.type_;
    o.pkey_ = nullptr;
  }
  return *this;
}

PublicKey::~PublicKey() { EVP_PKEY_free(pkey_); }

StatusOr<PublicKey> PublicKey::FromDer(std::string_view der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  PkeyPtr pkey(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  if (!pkey) return Status::InvalidArgument("public key is not valid SubjectPublicKeyInfo DER: " + OpensslError());
  if (p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    return Status::InvalidArgument("public key DER has trailing bytes");
  }
  PC_ASSIGN_OR_RETURN(KeyType type, Classify(pkey.get()));
  return PublicKey(pkey.release(), type);
}

StatusOr<PublicKey> PublicKey::FromPem(std::string_view pem) {
  PC_ASSIGN_OR_RETURN(PemBlock block, DecodePem(pem));
  if (block.type != kPublicKeyPemType) {
    return Status::InvalidArgument("unknown PEM type \"" + block.type + "\" for a public key (want \"PUBLIC KEY\")");
  }
  return FromDer(block.body);
}

StatusOr<PublicKey> PublicKey::FromPemFile(const std::string& path) {
  PC_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
  auto key = FromPem(text);
  if (!key.ok()) return key.status().Annotate(path);
  return key;
}

StatusOr<std::string> PublicKey::Der() const { return PublicDer(pkey_); }

StatusOr<std::string> PublicKey::Pem() const {
  PC_ASSIGN_OR_RETURN(std::string der, Der());
  return EncodePem(kPublicKeyPemType, der);
}

Status PublicKey::Verify(std::string_view payload, std::string_view signature) const {
  return VerifyWith(pkey_, type_, payload, signature);
}

// ---- PrivateKey ----

PrivateKey& PrivateKey::operator=(PrivateKey&& o) noexcept {
  if (this != &o) {
    EVP_PKEY_free(pkey_);
    pkey_ = o.pkey_;
    type_ = o.type_;
    o.pkey_ = nullptr;
  }
  return *this;
}

PrivateKey::~PrivateKey() { EVP_PKEY_free(pkey_); }

StatusOr<PrivateKey> PrivateKey::Adopt(EVP_PKEY* raw) {
  PkeyPtr pkey(raw);
  PC_ASSIGN_OR_RETURN(KeyType type, Classify(pkey.get()));
  return PrivateKey(pkey.release(), type);
}

StatusOr<PrivateKey> PrivateKey::Generate(KeyType type) {
  EVP_PKEY* pkey = nullptr;
  switch (type) {
    case KeyType::kEcdsaP256:
      pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
      break;
    case KeyType::kEcdsaP384:
      pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384");
      break;
    case KeyType::kEd25519:
      pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      break;
    case KeyType::kRsa:
      return Status::Unsupported("generating RSA keys is not supported (use ecdsa-p256 or ed25519, or import one)");
  }
  if (pkey == nullptr) return Status::Internal("key generation failed: " + OpensslError());
  return Adopt(pkey);
}

StatusOr<PrivateKey> PrivateKey::FromPkcs8Der(std::string_view der) {
  const unsigned char* start = reinterpret_cast<const unsigned char*>(der.data());
  const unsigned char* p = start;
  P8Ptr p8(d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, static_cast<long>(der.size())));
  if (!p8) {
    ERR_clear_error();
    return Status::InvalidArgument("private key is not PKCS#8 PrivateKeyInfo DER");
  }
  if (p != start + der.size()) return Status::InvalidArgument("private key PKCS#8 DER has trailing bytes");
  EVP_PKEY* pkey = EVP_PKCS82PKEY(p8.get());
  if (pkey == nullptr) {
    return Status::InvalidArgument("PKCS#8 private key could not be loaded: " + OpensslError());
  }
  return Adopt(pkey);
}

StatusOr<PrivateKey> PrivateKey::FromUnencryptedPem(std::string_view pem) {
  std::vector<std::string> types = PemTypes(pem);
  if (types.empty()) return Status::InvalidArgument("not a PEM file: no \"-----BEGIN ...-----\" line");
  std::string found;
  for (const std::string& t : types) {
    if (t == "PRIVATE KEY" || t == "EC PRIVATE KEY" || t == "RSA PRIVATE KEY") {
      found = t;
      break;
    }
  }
  if (found.empty()) {
    const std::string& t = types.front();
    if (t == kSigstorePrivateKeyPemType || t == kCosignPrivateKeyPemType) {
      return Status::InvalidArgument("PEM type \"" + t + "\" is already a cosign encrypted key");
    }
    if (t == "ENCRYPTED PRIVATE KEY") {
      return Status::Unsupported("PEM type \"ENCRYPTED PRIVATE KEY\" (PKCS#8 with a password) is not supported; "
                                 "decrypt it first (openssl pkcs8 -in KEY -out PLAIN)");
    }
    return Status::InvalidArgument("unknown PEM type \"" + t +
                                   "\" (want \"PRIVATE KEY\", \"EC PRIVATE KEY\" or \"RSA PRIVATE KEY\")");
  }
  if (pem.size() > static_cast<size_t>(INT32_MAX)) return Status::InvalidArgument("PEM too large");
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Status::Internal("BIO_new_mem_buf failed");
  // A password callback that refuses, so OpenSSL never prompts on the terminal.
  pem_password_cb* no_password = [](char*, int, int, void*) -> int { return -1; };
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_password, nullptr);
  if (pkey == nullptr) {
    return Status::InvalidArgument("PEM \"" + found + "\" could not be parsed (encrypted or corrupted?): " +
                                   OpensslError());
  }
  return Adopt(pkey);
}

StatusOr<PrivateKey> PrivateKey::FromEncryptedPem(std::string_view pem, std::string_view passphrase) {
  PC_ASSIGN_OR_RETURN(PemBlock block, DecodePem(pem));
  if (block.type != kSigstorePrivateKeyPemType && block.type != kCosignPrivateKeyPemType) {
    return Status::InvalidArgument("unknown PEM type \"" + block.type + "\" (want \"" +
                                   std::string(kSigstorePrivateKeyPemType) + "\" or \"" +
                                   std::string(kCosignPrivateKeyPemType) + "\")");
  }
  PC_ASSIGN_OR_RETURN(SecretBytes der, DecryptFromJson(block.body, passphrase));
  return FromPkcs8Der(der.view());
}

StatusOr<PrivateKey> PrivateKey::FromEncryptedPemFile(const std::string& path, std::string_view passphrase) {
  PC_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
  auto key = FromEncryptedPem(text, passphrase);
  if (!key.ok()) return key.status().Annotate(path);
  return key;
}

StatusOr<SecretBytes> PrivateKey::Pkcs8Der() const {
  P8Ptr p8(EVP_PKEY2PKCS8(pkey_));
  if (!p8) return Status::Internal("encoding PKCS#8: " + OpensslError());
  int len = i2d_PKCS8_PRIV_KEY_INFO(p8.get(), nullptr);
  if (len <= 0) return Status::Internal("encoding PKCS#8: " + OpensslError());
  SecretBytes der(static_cast<size_t>(len));
  unsigned char* p = der.data();
  if (i2d_PKCS8_PRIV_KEY_INFO(p8.get(), &p) != len) return Status::Internal("encoding PKCS#8: " + OpensslError());
  return der;
}

StatusOr<std::string> PrivateKey::ToEncryptedPem(std::string_view passphrase, const ScryptParams& params) const {
  PC_ASSIGN_OR_RETURN(SecretBytes der, Pkcs8Der());
  PC_ASSIGN_OR_RETURN(std::string json, EncryptToJson(der.view(), passphrase, params));
  return EncodePem(kSigstorePrivateKeyPemType, json);
}

StatusOr<PublicKey> PrivateKey::GetPublicKey() const {
  PC_ASSIGN_OR_RETURN(std::string der, PublicDer(pkey_));
  return PublicKey::FromDer(der);
}

StatusOr<std::string> PrivateKey::PublicKeyPem() const {
  PC_ASSIGN_OR_RETURN(std::string der, PublicDer(pkey_));
  return EncodePem(kPublicKeyPemType, der);
}

StatusOr<std::string> PrivateKey::Sign(std::string_view payload) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) return Status::Internal("EVP_MD_CTX_new failed");
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestSignInit(ctx.get(), &pctx, DigestFor(type_), nullptr, pkey_) != 1) {
    return Status::Internal("initializing signing: " + OpensslError());
  }
  PC_RETURN_IF_ERROR(SetPadding(pctx, type_));
  const auto* data = reinterpret_cast<const unsigned char*>(payload.data());
  size_t len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &len, data, payload.size()) != 1) {
    return Status::Internal("signing: " + OpensslError());
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, data, payload.size()) != 1) {
    return Status::Internal("signing: " + OpensslError());
  }
  sig.resize(len);
  return sig;
}

Status PrivateKey::Verify(std::string_view payload, std::string_view signature) const {
  return VerifyWith(pkey_, type_, payload, signature);
}

}  // namespace portcullis::keys
