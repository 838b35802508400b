#include <doctest/doctest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "keys/encrypted_key.h"
#include "keys/files.h"
#include "keys/key.h"
#include "keys/passphrase.h"
#include "keys/pem.h"
#include "keys/secret.h"
#include "oci/base64.h"
#include "tests/test_util.h"

namespace portcullis::keys {
namespace {

constexpr ScryptParams kFast{32768, 8, 1};  // the cheapest accepted N keeps tests quick
constexpr std::string_view kPayload = "hello portcullis\n";

// Written by tests/vectors/cosign_vectors.py (Python cryptography + PyNaCl, from
// formats.md alone): the older PEM type, N=32768, passphrase "cosign-vector", and an
// ECDSA-SHA256 signature over kPayload.
constexpr std::string_view kVectorKey = R"(-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjozMjc2OCwiciI6
OCwicCI6MX0sInNhbHQiOiJTNFFrQWtmejNNbWpjRVR3WmJ4YkNkSFFadE1zTGJt
QXRDSUphemZBSVJzPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiIxVmRMZVBtdC82dytSUEhwMUF0WDg5OEt0RStCUUczRyJ9LCJj
aXBoZXJ0ZXh0IjoieHZPWFpwYStUbGlMWjM3RjBnRk5BWjBJUTBjMldnRzF4RWY2
WmV1VHEvOVkvQklDY3FRcXhTU2diQjFxQTVMUzEyRm40NExwSTZsM0gzYThaQ3Ew
MjNPV2Y4dHVRaHdvM1dPeHgxNHd4cUtVY05Gd2JTOGw5VVlxTkxJOXZpTHREamMw
bmpnRmJPYlZORHY5WE5tMXVid2FWMzFNeXNBWFhiZFhqejlSSjVqUnlkMVRiaXZG
ZlhPRXoxTVNlQ0k1ZUtQV0U5RTMvblhnbUE9PSJ9
-----END ENCRYPTED COSIGN PRIVATE KEY-----
)";
constexpr std::string_view kVectorPub = R"(-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE1U14Yb76cFX/gpO7w2qL/vrVCm2h
A5JjFaDolrePhgJ+A7VMK/B3HNWsKXeFdqIRUXP+tAQxhodOY+1p6wQg+Q==
-----END PUBLIC KEY-----
)";
constexpr std::string_view kVectorSig =
    "MEYCIQDUP/C0g6LMFDcbjBQOBvB9ooKluhIhQ2Bu1A1diG+MfgIhAMw+bF2DuGvUmodZ95weeUEc5r4WklI4n0MejX7Vm7/m";

PrivateKey MustGenerate(KeyType type) {
  auto key = PrivateKey::Generate(type);
  REQUIRE_MESSAGE(key.ok(), key.status().ToString());
  return std::move(key).value();
}

std::string MustEncrypt(const PrivateKey& key, std::string_view pass, const ScryptParams& params = kFast) {
  auto pem = key.ToEncryptedPem(pass, params);
  REQUIRE_MESSAGE(pem.ok(), pem.status().ToString());
  return *pem;
}

// Rewrites the JSON inside an encrypted PEM with `edit`, keeping the PEM type.
template <typename Edit>
std::string EditDocument(const std::string& pem, Edit edit) {
  auto block = DecodePem(pem);
  REQUIRE(block.ok());
  nlohmann::json j = nlohmann::json::parse(block->body);
  edit(j);
  return EncodePem(block->type, j.dump());
}

// An unencrypted PEM of a freshly generated OpenSSL key, in the traditional
// ("EC PRIVATE KEY", "RSA PRIVATE KEY") or PKCS#8 ("PRIVATE KEY") form.
std::string OpensslKeyPem(EVP_PKEY* pkey, bool traditional) {
  BIO* bio = BIO_new(BIO_s_mem());
  int ok = traditional ? PEM_write_bio_PrivateKey_traditional(bio, pkey, nullptr, nullptr, 0, nullptr, nullptr)
                       : PEM_write_bio_PrivateKey(bio, pkey, nullptr, nullptr, 0, nullptr, nullptr);
  REQUIRE(ok == 1);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  return pem;
}

void RoundTrip(KeyType type, const ScryptParams& params) {
  PrivateKey key = MustGenerate(type);
  CHECK(key.type() == type);
  std::string pem = MustEncrypt(key, "correct horse", params);
  CHECK(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
  CHECK(pem.ends_with("-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
  auto block = DecodePem(pem);
  REQUIRE(block.ok());
  auto read_params = ReadScryptParams(block->body);
  REQUIRE(read_params.ok());
  CHECK(read_params->n == params.n);

  auto back = PrivateKey::FromEncryptedPem(pem, "correct horse");
  REQUIRE_MESSAGE(back.ok(), back.status().ToString());
  CHECK(back->type() == type);
  auto a = key.Pkcs8Der(), b = back->Pkcs8Der();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->view() == b->view());
  CHECK(*key.PublicKeyPem() == *back->PublicKeyPem());
}

TEST_CASE("keys: P-256 generate, encrypt, decrypt round trip") { RoundTrip(KeyType::kEcdsaP256, kFast); }

TEST_CASE("keys: Ed25519 generate, encrypt, decrypt round trip") { RoundTrip(KeyType::kEd25519, kFast); }

TEST_CASE("keys: P-384 generate, encrypt, decrypt round trip") { RoundTrip(KeyType::kEcdsaP384, kFast); }

TEST_CASE("keys: default scrypt N=65536 round trip and cosign JSON layout") {
  PrivateKey key = MustGenerate(KeyType::kEcdsaP256);
  auto pem = key.ToEncryptedPem("pw");  // default parameters
  REQUIRE(pem.ok());
  auto block = DecodePem(*pem);
  REQUIRE(block.ok());
  CHECK(block->type == "ENCRYPTED SIGSTORE PRIVATE KEY");
  CHECK(block->body.starts_with(R"({"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":")"));
  CHECK(block->body.find(R"("},"cipher":{"name":"nacl/secretbox","nonce":")") != std::string::npos);
  CHECK(block->body.find(R"("},"ciphertext":")") != std::string::npos);
  CHECK(block->body.ends_with("\"}"));
  nlohmann::json j = nlohmann::json::parse(block->body);
  CHECK(oci::Base64Decode(j["kdf"]["salt"].get<std::string>())->size() == 32);
  CHECK(oci::Base64Decode(j["cipher"]["nonce"].get<std::string>())->size() == 24);
  // 64-character PEM lines.
  size_t line_start = pem->find('\n') + 1;
  size_t end = pem->find("-----END");
  while (line_start < end) {
    size_t nl = pem->find('\n', line_start);
    CHECK(nl - line_start <= 64);
    if (pem->find('\n', nl + 1) < end) CHECK(nl - line_start == 64);
    line_start = nl + 1;
  }
  auto back = PrivateKey::FromEncryptedPem(*pem, "pw");
  REQUIRE_MESSAGE(back.ok(), back.status().ToString());
  CHECK(*back->PublicKeyPem() == *key.PublicKeyPem());
}

TEST_CASE("keys: sign and verify round trip for every key type") {
  EVP_PKEY* rsa = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
  REQUIRE(rsa != nullptr);
  auto rsa_key = PrivateKey::FromUnencryptedPem(OpensslKeyPem(rsa, /*traditional=*/true));
  EVP_PKEY_free(rsa);
  REQUIRE_MESSAGE(rsa_key.ok(), rsa_key.status().ToString());
  CHECK(rsa_key->type() == KeyType::kRsa);

  std::vector<PrivateKey> keys;
  keys.push_back(MustGenerate(KeyType::kEcdsaP256));
  keys.push_back(MustGenerate(KeyType::kEcdsaP384));
  keys.push_back(MustGenerate(KeyType::kEd25519));
  keys.push_back(std::move(rsa_key).value());
  for (const PrivateKey& key : keys) {
    CAPTURE(KeyTypeName(key.type()));
    auto sig = key.Sign(kPayload);
    REQUIRE_MESSAGE(sig.ok(), sig.status().ToString());
    if (key.type() == KeyType::kEcdsaP256 || key.type() == KeyType::kEcdsaP384) {
      CHECK(static_cast<unsigned char>((*sig)[0]) == 0x30);  // ASN.1 DER SEQUENCE
    }
    if (key.type() == KeyType::kEd25519) CHECK(sig->size() == 64);
    CHECK(key.Verify(kPayload, *sig).ok());
    auto pub = PublicKey::FromPem(*key.PublicKeyPem());
    REQUIRE_MESSAGE(pub.ok(), pub.status().ToString());
    CHECK(pub->type() == key.type());
    CHECK(pub->Verify(kPayload, *sig).ok());
    CHECK(*pub->Pem() == *key.PublicKeyPem());
  }
}

TEST_CASE("keys: a signature over a different payload, or a damaged one, fails") {
  PrivateKey key = MustGenerate(KeyType::kEcdsaP256);
  auto pub = key.GetPublicKey();
  REQUIRE(pub.ok());
  std::string sig = *key.Sign(kPayload);
  Status st = pub->Verify("hello portcullis?\n", sig);
  CHECK(st.Is(Code::kDenied));
  CHECK(st.message().find("does not verify") != std::string::npos);
  std::string bad = sig;
  bad[bad.size() - 1] ^= 0x01;
  CHECK(pub->Verify(kPayload, bad).Is(Code::kDenied));
  CHECK(pub->Verify(kPayload, "").Is(Code::kDenied));
  CHECK(pub->Verify(kPayload, "not DER at all").Is(Code::kDenied));
  // Another key's signature.
  PrivateKey other = MustGenerate(KeyType::kEcdsaP256);
  CHECK(pub->Verify(kPayload, *other.Sign(kPayload)).Is(Code::kDenied));

  PrivateKey ed = MustGenerate(KeyType::kEd25519);
  std::string ed_sig = *ed.Sign(kPayload);
  CHECK(ed.Verify("other", ed_sig).Is(Code::kDenied));
}

TEST_CASE("keys: wrong passphrase fails with a clear error") {
  PrivateKey key = MustGenerate(KeyType::kEcdsaP256);
  std::string pem = MustEncrypt(key, "right");
  auto back = PrivateKey::FromEncryptedPem(pem, "wrong");
  REQUIRE_FALSE(back.ok());
  CHECK(back.status().Is(Code::kUnauthorized));
  CHECK(back.status().message() == "wrong passphrase or corrupted key: decryption failed");
  CHECK_FALSE(PrivateKey::FromEncryptedPem(pem, "").ok());
}

TEST_CASE("keys: empty passphrase works when given") {
  PrivateKey key = MustGenerate(KeyType::kEd25519);
  std::string pem = MustEncrypt(key, "");
  CHECK(PrivateKey::FromEncryptedPem(pem, "").ok());
  CHECK_FALSE(PrivateKey::FromEncryptedPem(pem, " ").ok());
}

TEST_CASE("keys: tampered ciphertext, nonce or salt fails") {
  PrivateKey key = MustGenerate(KeyType::kEcdsaP256);
  std::string pem = MustEncrypt(key, "pw");
  auto flip = [](nlohmann::json& field) {
    std::string raw = *oci::Base64Decode(field.get<std::string>());
    raw[raw.size() / 2] ^= 0x40;
    field = oci::Base64Encode(raw);
  };
  for (const char* which : {"ciphertext", "nonce", "salt"}) {
    CAPTURE(which);
    std::string tampered = EditDocument(pem, [&](nlohmann::json& j) {
      if (std::string(which) == "ciphertext") flip(j["ciphertext"]);
      if (std::string(which) == "nonce") flip(j["cipher"]["nonce"]);
      if (std::string(which) == "salt") flip(j["kdf"]["salt"]);
    });
    auto back = PrivateKey::FromEncryptedPem(tampered, "pw");
    REQUIRE_FALSE(back.ok());
    CHECK(back.status().message() == "wrong passphrase or corrupted key: decryption failed");
  }
  // A ciphertext cut shorter than the tag.
  std::string cut = EditDocument(pem, [](nlohmann::json& j) { j["ciphertext"] = oci::Base64Encode("short"); });
  auto back = PrivateKey::FromEncryptedPem(cut, "pw");
  REQUIRE_FALSE(back.ok());
  CHECK(back.status().message().find("shorter than the 16-byte authentication tag") != std::string::npos);
}

TEST_CASE("keys: truncated PEM fails") {
  PrivateKey key = MustGenerate(KeyType::kEcdsaP256);
  std::string pem = MustEncrypt(key, "pw");
  // No END line.
  auto back = PrivateKey::FromEncryptedPem(pem.substr(0, pem.size() / 2), "pw");
  REQUIRE_FALSE(back.ok());
  CHECK(back.status().message().find("truncated PEM") != std::string::npos);
  // Body lines lost but the END line kept: the JSON is cut off.
  size_t body = pem.find('\n') + 1;
  std::string cut = pem.substr(0, body) + pem.substr(body, 65 * 3) + pem.substr(pem.find("-----END"));
  back = PrivateKey::FromEncryptedPem(cut, "pw");
  REQUIRE_FALSE(back.ok());
  CHECK(back.status().message() == "encrypted key: body is not valid JSON");
  // Empty input, and a body that is not base64.
  CHECK(PrivateKey::FromEncryptedPem("", "pw").status().message().find("not a PEM file") != std::string::npos);
  std::string garbled = pem;
  garbled[body + 3] = '!';
  CHECK(PrivateKey::FromEncryptedPem(garbled, "pw").status().message().find("not valid base64") != std::string::npos);
}

TEST_CASE("keys: unknown PEM type fails") {
  PrivateKey key = MustGenerate(KeyType::kEcdsaP256);
  std::string pem = MustEncrypt(key, "pw");
  auto block = DecodePem(pem);
  REQUIRE(block.ok());
  auto back = PrivateKey::FromEncryptedPem(EncodePem("ENCRYPTED FOO PRIVATE KEY", block->body), "pw");
  REQUIRE_FALSE(back.ok());
  CHECK(back.status().message().find("unknown PEM type \"ENCRYPTED FOO PRIVATE KEY\"") != std::string::npos);
  // A public key where a private key belongs, and the other way round.
  CHECK(PrivateKey::FromEncryptedPem(*key.PublicKeyPem(), "pw").status().message().find("\"PUBLIC KEY\"") !=
        std::string::npos);
  auto pub = PublicKey::FromPem(pem);
  REQUIRE_FALSE(pub.ok());
  CHECK(pub.status().message().find("unknown PEM type \"ENCRYPTED SIGSTORE PRIVATE KEY\"") != std::string::npos);
  // Mismatched END.
  std::string mismatched = pem;
  mismatched.replace(mismatched.find("-----END ENCRYPTED SIGSTORE"), 27, "-----END ENCRYPTED SIGSTORX");
  CHECK(PrivateKey::FromEncryptedPem(mismatched, "pw").status().message().find("malformed PEM") != std::string::npos);
}

TEST_CASE("keys: unsupported scrypt parameters fail naming the parameter") {
  PrivateKey key = MustGenerate(KeyType::kEcdsaP256);
  std::string pem = MustEncrypt(key, "pw");
  struct Case {
    const char* param;
    uint64_t value;
    const char* want;
  };
  for (const Case& c : {Case{"N", 16384, "N=16384"}, Case{"N", 1u << 20, "N=1048576"}, Case{"r", 16, "r=16"},
                        Case{"p", 2, "p=2"}}) {
    CAPTURE(c.want);
    std::string edited = EditDocument(pem, [&](nlohmann::json& j) { j["kdf"]["params"][c.param] = c.value; });
    auto back = PrivateKey::FromEncryptedPem(edited, "pw");
    REQUIRE_FALSE(back.ok());
    CHECK(back.status().message().find(std::string("unsupported scrypt parameter ") + c.want) != std::string::npos);
  }
  // Writing refuses them too.
  auto bad = key.ToEncryptedPem("pw", ScryptParams{1024, 8, 1});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("N=1024") != std::string::npos);
  // N=131072 is accepted.
  CHECK(CheckScryptParams(ScryptParams{131072, 8, 1}).ok());
  CHECK_FALSE(CheckScryptParams(ScryptParams{65536, 8, 0}).ok());
}

TEST_CASE("keys: bad JSON, unknown kdf or cipher, missing fields fail naming the problem") {
  PrivateKey key = MustGenerate(KeyType::kEcdsaP256);
  std::string pem = MustEncrypt(key, "pw");
  auto message = [](const std::string& p) { return PrivateKey::FromEncryptedPem(p, "pw").status().message(); };
  CHECK(message(EncodePem("ENCRYPTED SIGSTORE PRIVATE KEY", "{not json")) == "encrypted key: body is not valid JSON");
  CHECK(message(EncodePem("ENCRYPTED SIGSTORE PRIVATE KEY", "[1,2]")) == "encrypted key: body is not a JSON object");
  CHECK(message(EditDocument(pem, [](nlohmann::json& j) { j["kdf"]["name"] = "argon2"; })).find("unsupported kdf") !=
        std::string::npos);
  CHECK(message(EditDocument(pem, [](nlohmann::json& j) { j["cipher"]["name"] = "aes-gcm"; }))
            .find("unsupported cipher \"aes-gcm\"") != std::string::npos);
  CHECK(message(EditDocument(pem, [](nlohmann::json& j) { j["kdf"].erase("salt"); })) ==
        "encrypted key: missing field \"kdf.salt\"");
  CHECK(message(EditDocument(pem, [](nlohmann::json& j) { j["kdf"]["params"]["N"] = "65536"; }))
            .find("\"kdf.params.N\" has the wrong type") != std::string::npos);
  CHECK(message(EditDocument(pem, [](nlohmann::json& j) { j["cipher"]["nonce"] = oci::Base64Encode("short"); }))
            .find("\"cipher.nonce\" is 5 bytes, want 24") != std::string::npos);
  CHECK(message(EditDocument(pem, [](nlohmann::json& j) { j["ciphertext"] = "%%%"; }))
            .find("\"ciphertext\" is not valid base64") != std::string::npos);
}

TEST_CASE("keys: a cosign vector with the older ENCRYPTED COSIGN PRIVATE KEY type loads") {
  auto key = PrivateKey::FromEncryptedPem(kVectorKey, "cosign-vector");
  REQUIRE_MESSAGE(key.ok(), key.status().ToString());
  CHECK(key->type() == KeyType::kEcdsaP256);
  CHECK(*key->PublicKeyPem() == kVectorPub);
  auto pub = PublicKey::FromPem(kVectorPub);
  REQUIRE(pub.ok());
  std::string sig = *oci::Base64Decode(kVectorSig);
  CHECK(pub->Verify(kPayload, sig).ok());
  CHECK(pub->Verify("hello portcullis", sig).Is(Code::kDenied));
  CHECK(pub->Verify(kPayload, *key->Sign(kPayload)).ok());
  CHECK(PrivateKey::FromEncryptedPem(kVectorKey, "cosign-vectoR").status().Is(Code::kUnauthorized));
}

TEST_CASE("keys: import unencrypted PEMs") {
  EVP_PKEY* ec = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  REQUIRE(ec != nullptr);
  std::string sec1 = OpensslKeyPem(ec, /*traditional=*/true);
  std::string pkcs8 = OpensslKeyPem(ec, /*traditional=*/false);
  EVP_PKEY_free(ec);
  CHECK(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
  CHECK(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
  auto a = PrivateKey::FromUnencryptedPem(sec1);
  auto b = PrivateKey::FromUnencryptedPem("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n" +
                                          pkcs8);
  REQUIRE_MESSAGE(a.ok(), a.status().ToString());
  REQUIRE_MESSAGE(b.ok(), b.status().ToString());
  CHECK(*a->PublicKeyPem() == *b->PublicKeyPem());

  PrivateKey ed = MustGenerate(KeyType::kEd25519);
  auto der = ed.Pkcs8Der();
  REQUIRE(der.ok());
  auto ed2 = PrivateKey::FromPkcs8Der(der->view());
  REQUIRE(ed2.ok());
  CHECK(*ed2->PublicKeyPem() == *ed.PublicKeyPem());
  std::string trailing(der->view());
  trailing.push_back('\0');
  CHECK(PrivateKey::FromPkcs8Der(trailing).status().message().find("trailing") != std::string::npos);
  CHECK_FALSE(PrivateKey::FromPkcs8Der("garbage").ok());

  // Unsupported curve, small RSA, refused types.
  EVP_PKEY* k1 = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "secp256k1");
  REQUIRE(k1 != nullptr);
  auto k1_key = PrivateKey::FromUnencryptedPem(OpensslKeyPem(k1, false));
  EVP_PKEY_free(k1);
  REQUIRE_FALSE(k1_key.ok());
  CHECK(k1_key.status().message().find("secp256k1") != std::string::npos);
  EVP_PKEY* small = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(1024));
  REQUIRE(small != nullptr);
  auto small_key = PrivateKey::FromUnencryptedPem(OpensslKeyPem(small, false));
  EVP_PKEY_free(small);
  REQUIRE_FALSE(small_key.ok());
  CHECK(small_key.status().message().find("1024 bits is too small") != std::string::npos);
  CHECK(PrivateKey::FromUnencryptedPem(kVectorKey).status().message().find("already a cosign encrypted key") !=
        std::string::npos);
  CHECK(PrivateKey::FromUnencryptedPem(kVectorPub).status().message().find("unknown PEM type \"PUBLIC KEY\"") !=
        std::string::npos);
}

TEST_CASE("keys: key type names") {
  CHECK(*ParseKeyType("ecdsa-p256") == KeyType::kEcdsaP256);
  CHECK(*ParseKeyType("ed25519") == KeyType::kEd25519);
  CHECK(ParseKeyType("dsa").status().message().find("unknown key type \"dsa\"") != std::string::npos);
  CHECK(PrivateKey::Generate(KeyType::kRsa).status().Is(Code::kUnsupported));
}

TEST_CASE("keys: PEM encoding matches Go's encoding/pem") {
  std::string body(100, 'x');
  std::string pem = EncodePem("TEST", body);
  CHECK(pem ==
        "-----BEGIN TEST-----\n"
        "eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4\n"
        "eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4\n"
        "eHh4eA==\n"
        "-----END TEST-----\n");
  auto block = DecodePem("leading text\r\n" + pem);
  REQUIRE(block.ok());
  CHECK(block->type == "TEST");
  CHECK(block->body == body);
  CHECK(PemTypes("x\n" + pem + pem) == std::vector<std::string>{"TEST", "TEST"});
}

TEST_CASE("keys: passphrase sources") {
  portcullis::testing::TempDir tmp;  // removed at the end, unlike a bare mkdtemp
  const std::string dir = tmp.str();
  std::string file = dir + "/pass";
  std::ofstream(file) << "from file\nsecond line\n";
  auto p = ReadPassphraseFile(file);
  REQUIRE(p.ok());
  CHECK(p->view() == "from file");
  std::ofstream(file, std::ios::trunc) << "crlf\r\n";
  CHECK(ReadPassphraseFile(file)->view() == "crlf");
  std::ofstream(file, std::ios::trunc) << "no newline";
  CHECK(ReadPassphraseFile(file)->view() == "no newline");
  std::ofstream(file, std::ios::trunc).close();
  auto empty = ReadPassphraseFile(file);
  REQUIRE(empty.ok());
  CHECK(empty->empty());
  CHECK(ReadPassphraseFile(dir + "/missing").status().Is(Code::kNotFound));

  // Environment first (PORTCULLIS_PASSWORD, then COSIGN_PASSWORD), then the file.
  const char* saved_pc = std::getenv("PORTCULLIS_PASSWORD");
  const char* saved_cosign = std::getenv("COSIGN_PASSWORD");
  std::string keep_pc = saved_pc ? saved_pc : "", keep_cosign = saved_cosign ? saved_cosign : "";
  std::ofstream(file, std::ios::trunc) << "file pass\n";
  PassphraseRequest req;
  req.passphrase_file = file;
  setenv("PORTCULLIS_PASSWORD", "pc pass", 1);
  setenv("COSIGN_PASSWORD", "cosign pass", 1);
  CHECK(GetPassphrase(req)->view() == "pc pass");
  setenv("PORTCULLIS_PASSWORD", "", 1);
  CHECK(GetPassphrase(req)->empty());  // set to empty is an explicit empty passphrase
  unsetenv("PORTCULLIS_PASSWORD");
  CHECK(GetPassphrase(req)->view() == "cosign pass");
  unsetenv("COSIGN_PASSWORD");
  CHECK(GetPassphrase(req)->view() == "file pass");
  if (!isatty(STDIN_FILENO)) {
    auto none = GetPassphrase(PassphraseRequest());
    REQUIRE_FALSE(none.ok());
    CHECK(none.status().message() ==
          "no passphrase: set PORTCULLIS_PASSWORD or COSIGN_PASSWORD, or pass --passphrase-file");
  }
  if (saved_pc) setenv("PORTCULLIS_PASSWORD", keep_pc.c_str(), 1);
  if (saved_cosign) setenv("COSIGN_PASSWORD", keep_cosign.c_str(), 1);
  unlink(file.c_str());
  rmdir(dir.c_str());
}

TEST_CASE("keys: atomic writes never clobber without overwrite") {
  portcullis::testing::TempDir tmp;  // removed at the end, unlike a bare mkdtemp
  const std::string dir = tmp.str();
  std::string path = dir + "/k.key";
  REQUIRE(WriteFileAtomically(path, "one", 0600, /*overwrite=*/false).ok());
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  Status again = WriteFileAtomically(path, "two", 0600, false);
  CHECK(again.Is(Code::kAlreadyExists));
  CHECK(*ReadSmallFile(path) == "one");
  REQUIRE(WriteFileAtomically(path, "three", 0644, /*overwrite=*/true).ok());
  CHECK(*ReadSmallFile(path) == "three");
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);
  CHECK(ReadSmallFile(dir + "/none").status().Is(Code::kNotFound));
  CHECK(ReadSmallFile(path, 2).status().Is(Code::kInvalidArgument));
  CHECK(WriteFileAtomically(dir + "/no/such/dir/k", "x", 0600, false).Is(Code::kIoError));
  unlink(path.c_str());
  CHECK(rmdir(dir.c_str()) == 0);  // no temporary files left behind
}

TEST_CASE("keys: SecretBytes") {
  SecretBytes a(std::string_view("secret"));
  SecretBytes b(std::string_view("secret"));
  CHECK(a.Equals(b));
  b.Truncate(3);
  CHECK(b.view() == "sec");
  CHECK_FALSE(a.Equals(b));
  SecretBytes c = std::move(a);
  CHECK(a.empty());  // NOLINT(bugprone-use-after-move): moved-from is documented empty
  CHECK(c.view() == "secret");
}

}  // namespace
}  // namespace portcullis::keys
