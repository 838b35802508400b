#include "keys/encrypted_key.h"

#include <sodium.h>

#include <nlohmann/json.hpp>

#include "oci/base64.h"

namespace portcullis::keys {

namespace {

constexpr size_t kSaltSize = 32;
constexpr size_t kKeySize = crypto_secretbox_KEYBYTES;      // 32
constexpr size_t kNonceSize = crypto_secretbox_NONCEBYTES;  // 24
constexpr size_t kTagSize = crypto_secretbox_MACBYTES;      // 16

static_assert(kKeySize == 32 && kNonceSize == 24 && kTagSize == 16);

Status EnsureSodium() {
  if (sodium_init() < 0) return Status::Internal("libsodium failed to initialize");
  return Status::Ok();
}

StatusOr<SecretBytes> DeriveKey(std::string_view passphrase, std::string_view salt, const ScryptParams& params) {
  SecretBytes key(kKeySize);
  if (crypto_pwhash_scryptsalsa208sha256_ll(reinterpret_cast<const uint8_t*>(passphrase.data()), passphrase.size(),
                                            reinterpret_cast<const uint8_t*>(salt.data()), salt.size(), params.n,
                                            static_cast<uint32_t>(params.r), static_cast<uint32_t>(params.p),
                                            key.data(), key.size()) != 0) {
    return Status::Internal("scrypt key derivation failed (out of memory?)");
  }
  return key;
}

// Reads obj[name] as an object; errors name the path.
StatusOr<const nlohmann::json*> Field(const nlohmann::json& obj, const char* name, const std::string& path,
                                      nlohmann::json::value_t type) {
  auto it = obj.find(name);
  if (it == obj.end()) return Status::InvalidArgument("encrypted key: missing field \"" + path + "\"");
  bool ok = it->type() == type ||
            (type == nlohmann::json::value_t::number_integer &&
             it->type() == nlohmann::json::value_t::number_unsigned);
  if (!ok) {
    return Status::InvalidArgument("encrypted key: field \"" + path + "\" has the wrong type (" +
                                   std::string(it->type_name()) + ")");
  }
  return &*it;
}

StatusOr<std::string> Base64Field(const nlohmann::json& obj, const char* name, const std::string& path) {
  PC_ASSIGN_OR_RETURN(const nlohmann::json* f, Field(obj, name, path, nlohmann::json::value_t::string));
  auto decoded = oci::Base64Decode(f->get_ref<const std::string&>());
  if (!decoded) return Status::InvalidArgument("encrypted key: field \"" + path + "\" is not valid base64");
  return std::move(*decoded);
}

StatusOr<uint64_t> IntField(const nlohmann::json& obj, const char* name, const std::string& path) {
  PC_ASSIGN_OR_RETURN(const nlohmann::json* f, Field(obj, name, path, nlohmann::json::value_t::number_integer));
  if (f->is_number_integer() && f->get<int64_t>() < 0) {
    return Status::InvalidArgument("encrypted key: field \"" + path + "\" is negative");
  }
  return f->get<uint64_t>();
}

struct Document {
  ScryptParams params;
  std::string salt, nonce, ciphertext;
};

StatusOr<Document> ParseDocument(std::string_view json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument("encrypted key: body is not valid JSON");
  if (!j.is_object()) return Status::InvalidArgument("encrypted key: body is not a JSON object");
  using vt = nlohmann::json::value_t;
  Document doc;
  PC_ASSIGN_OR_RETURN(const nlohmann::json* kdf, Field(j, "kdf", "kdf", vt::object));
  PC_ASSIGN_OR_RETURN(const nlohmann::json* kdf_name, Field(*kdf, "name", "kdf.name", vt::string));
  if (*kdf_name != "scrypt") {
    return Status::InvalidArgument("encrypted key: unsupported kdf \"" + kdf_name->get<std::string>() +
                                   "\" (only \"scrypt\" is supported)");
  }
  PC_ASSIGN_OR_RETURN(const nlohmann::json* params, Field(*kdf, "params", "kdf.params", vt::object));
  PC_ASSIGN_OR_RETURN(doc.params.n, IntField(*params, "N", "kdf.params.N"));
  PC_ASSIGN_OR_RETURN(doc.params.r, IntField(*params, "r", "kdf.params.r"));
  PC_ASSIGN_OR_RETURN(doc.params.p, IntField(*params, "p", "kdf.params.p"));
  PC_ASSIGN_OR_RETURN(doc.salt, Base64Field(*kdf, "salt", "kdf.salt"));
  if (doc.salt.empty()) return Status::InvalidArgument("encrypted key: field \"kdf.salt\" is empty");

  PC_ASSIGN_OR_RETURN(const nlohmann::json* cipher, Field(j, "cipher", "cipher", vt::object));
  PC_ASSIGN_OR_RETURN(const nlohmann::json* cipher_name, Field(*cipher, "name", "cipher.name", vt::string));
  if (*cipher_name != "nacl/secretbox") {
    return Status::InvalidArgument("encrypted key: unsupported cipher \"" + cipher_name->get<std::string>() +
                                   "\" (only \"nacl/secretbox\" is supported)");
  }
  PC_ASSIGN_OR_RETURN(doc.nonce, Base64Field(*cipher, "nonce", "cipher.nonce"));
  if (doc.nonce.size() != kNonceSize) {
    return Status::InvalidArgument("encrypted key: field \"cipher.nonce\" is " + std::to_string(doc.nonce.size()) +
                                   " bytes, want 24");
  }
  PC_ASSIGN_OR_RETURN(doc.ciphertext, Base64Field(j, "ciphertext", "ciphertext"));
  return doc;
}

}  // namespace

Status CheckScryptParams(const ScryptParams& params) {
  if (params.n != 32768 && params.n != 65536 && params.n != 131072) {
    return Status::InvalidArgument("unsupported scrypt parameter N=" + std::to_string(params.n) +
                                   " (accepted: 32768, 65536, 131072)");
  }
  if (params.r != 8) {
    return Status::InvalidArgument("unsupported scrypt parameter r=" + std::to_string(params.r) + " (want 8)");
  }
  if (params.p != 1) {
    return Status::InvalidArgument("unsupported scrypt parameter p=" + std::to_string(params.p) + " (want 1)");
  }
  return Status::Ok();
}

StatusOr<std::string> EncryptToJson(std::string_view plaintext, std::string_view passphrase,
                                    const ScryptParams& params) {
  PC_RETURN_IF_ERROR(EnsureSodium());
  PC_RETURN_IF_ERROR(CheckScryptParams(params));
  std::string salt(kSaltSize, '\0'), nonce(kNonceSize, '\0');
  randombytes_buf(salt.data(), salt.size());
  randombytes_buf(nonce.data(), nonce.size());
  PC_ASSIGN_OR_RETURN(SecretBytes key, DeriveKey(passphrase, salt, params));
  std::string sealed(kTagSize + plaintext.size(), '\0');
  if (crypto_secretbox_easy(reinterpret_cast<unsigned char*>(sealed.data()),
                            reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(),
                            reinterpret_cast<const unsigned char*>(nonce.data()), key.data()) != 0) {
    return Status::Internal("secretbox encryption failed");
  }
  // Built by hand to keep Go's field order (nlohmann::json would sort the keys).
  std::string out = R"({"kdf":{"name":"scrypt","params":{"N":)" + std::to_string(params.n) +
                    R"(,"r":)" + std::to_string(params.r) + R"(,"p":)" + std::to_string(params.p) +
                    R"(},"salt":")" + oci::Base64Encode(salt) +
                    R"("},"cipher":{"name":"nacl/secretbox","nonce":")" + oci::Base64Encode(nonce) +
                    R"("},"ciphertext":")" + oci::Base64Encode(sealed) + R"("})";
  return out;
}

StatusOr<SecretBytes> DecryptFromJson(std::string_view json, std::string_view passphrase) {
  PC_RETURN_IF_ERROR(EnsureSodium());
  PC_ASSIGN_OR_RETURN(Document doc, ParseDocument(json));
  PC_RETURN_IF_ERROR(CheckScryptParams(doc.params).Annotate("encrypted key"));
  if (doc.ciphertext.size() < kTagSize) {
    return Status::InvalidArgument("encrypted key: ciphertext is " + std::to_string(doc.ciphertext.size()) +
                                   " bytes, shorter than the 16-byte authentication tag (truncated?)");
  }
  PC_ASSIGN_OR_RETURN(SecretBytes key, DeriveKey(passphrase, doc.salt, doc.params));
  SecretBytes plaintext(doc.ciphertext.size() - kTagSize);
  if (crypto_secretbox_open_easy(plaintext.data(), reinterpret_cast<const unsigned char*>(doc.ciphertext.data()),
                                 doc.ciphertext.size(), reinterpret_cast<const unsigned char*>(doc.nonce.data()),
                                 key.data()) != 0) {
    return Status::Unauthorized("wrong passphrase or corrupted key: decryption failed");
  }
  return plaintext;
}

StatusOr<ScryptParams> ReadScryptParams(std::string_view json) {
  PC_ASSIGN_OR_RETURN(Document doc, ParseDocument(json));
  return doc.params;
}

}  // namespace portcullis::keys
