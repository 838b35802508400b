// Test helpers for the policy tests (not part of the library): keys, payloads
// built by hand as Go's json.Marshal writes them, a fake SignatureSource, and a
// temporary folder for key and policy files.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "keys/key.h"
#include "oci/base64.h"
#include "oci/digest.h"
#include "tests/test_util.h"
#include "verifier/discovery.h"

namespace portcullis::verifier::testing {

inline oci::Digest DigestOf(const std::string& s) { return oci::Digest::Sha256Of(s); }

// cosign's payload bytes (formats.md §2).
inline std::string CosignPayload(const std::string& docker_reference, const oci::Digest& digest) {
  return R"({"critical":{"identity":{"docker-reference":")" + docker_reference +
         R"("},"image":{"docker-manifest-digest":")" + digest.ToString() +
         R"("},"type":"cosign container image signature"},"optional":null})";
}

// A generated key pair with its public PEM.
struct TestKey {
  std::unique_ptr<keys::PrivateKey> priv;
  std::string pub_pem;

  static TestKey Make(keys::KeyType type = keys::KeyType::kEcdsaP256) {
    auto k = keys::PrivateKey::Generate(type);
    TestKey t;
    t.priv = std::make_unique<keys::PrivateKey>(std::move(*k));
    t.pub_pem = *t.priv->PublicKeyPem();
    return t;
  }

  // A 2048-bit RSA key (keys::PrivateKey::Generate makes no RSA keys).
  static TestKey MakeRsa() {
    EVP_PKEY* pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, pkey, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<size_t>(n));
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    auto k = keys::PrivateKey::FromUnencryptedPem(pem);
    TestKey t;
    t.priv = std::make_unique<keys::PrivateKey>(std::move(*k));
    t.pub_pem = *t.priv->PublicKeyPem();
    return t;
  }

  FoundSignature Sign(const std::string& payload, const std::string& source = "fake") const {
    FoundSignature f;
    f.payload = payload;
    f.layer_digest = oci::Digest::Sha256Of(payload);
    f.size = static_cast<int64_t>(payload.size());
    f.signature_b64 = oci::Base64Encode(*priv->Sign(payload));
    f.source = source;
    return f;
  }
  // A signature over cosign's payload for (reference, digest).
  FoundSignature SignImage(const std::string& reference, const oci::Digest& digest) const {
    return Sign(CosignPayload(reference, digest));
  }
};

// Returns the signatures it was given, counting calls; or an error.
class FakeSource : public SignatureSource {
 public:
  FakeSource() = default;
  explicit FakeSource(std::vector<FoundSignature> sigs) : sigs_(std::move(sigs)) {}
  StatusOr<std::vector<FoundSignature>> Find(const oci::Digest&) override {
    ++calls;
    if (!error.ok()) return error;
    return sigs_;
  }
  void Add(FoundSignature f) { sigs_.push_back(std::move(f)); }
  int calls = 0;
  Status error;

 private:
  std::vector<FoundSignature> sigs_;
};

using ::portcullis::testing::TempDir;  // tests/test_util.h

// JSON string literal of `s` (for building policy text).
// A Sigstore bundle as discovery hands it to the policy engine (a referrer by default).
inline FoundSignature BundleFound(const std::string& bundle_json, std::string source = "referrer sha256:test") {
  FoundSignature f;
  f.bundle = true;
  f.payload = bundle_json;
  f.layer_digest = oci::Digest::Sha256Of(bundle_json);
  f.size = static_cast<int64_t>(bundle_json.size());
  f.source = std::move(source);
  return f;
}

inline std::string JsonQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out + "\"";
}

}  // namespace portcullis::verifier::testing
