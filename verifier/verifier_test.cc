// Unit tests for verifier/: the strict simple-signing payload parser (the shape
// containers/image accepts), signature verification by key, docker config
// credentials.
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "keys/key.h"
#include "oci/base64.h"
#include "oci/remote.h"
#include "verifier/signatures.h"
#include "verifier/simple_signing.h"

namespace portcullis::verifier {
namespace {

const std::string kHex = "008657da993e7e8e14f5da568576f1a54a7cc25bec507b63b3b17833c43d33f7";
const oci::Digest kDigest = *oci::Digest::Parse("sha256:" + kHex);

// cosign's payload for kDigest, with `optional` and the three critical members
// replaceable for the table below.
std::string Payload(const std::string& optional = "null", const std::string& type = R"("cosign container image signature")",
                    const std::string& image = R"({"docker-manifest-digest":"sha256:)" + kHex + R"("})",
                    const std::string& identity = R"({"docker-reference":"127.0.0.1:5000/lab/small"})") {
  return R"({"critical":{"identity":)" + identity + R"(,"image":)" + image + R"(,"type":)" + type +
         R"(},"optional":)" + optional + "}";
}

TEST_CASE("verifier: strict parser accepts cosign's payload shapes") {
  const std::vector<std::string> good = {
      Payload(),
      Payload(R"({"git_sha":"abc123","z":"\u003c"})"),
      Payload(R"({"creator":"containers/image 5.24","timestamp":1700000000})"),
      Payload(R"({"timestamp":1.7e9})"),            // an integral float is an integer
      Payload(R"({"nested":{"a":[1,2,{"b":null}]}})"),  // other optional keys: any JSON
      // Member order is free; whitespace is allowed.
      R"( { "optional" : null , "critical" : { "type" : "cosign container image signature" ,)"
      R"( "image" : { "docker-manifest-digest" : "sha256:)" + kHex + R"(" } ,)"
      R"( "identity" : { "docker-reference" : "r.example/a" } } } )",
  };
  for (const std::string& p : good) {
    CAPTURE(p);
    auto parsed = ParseSimpleSigningPayload(p);
    REQUIRE_MESSAGE(parsed.ok(), parsed.status().ToString());
    CHECK(parsed->manifest_digest == kDigest);
  }
  auto p = ParseSimpleSigningPayload(Payload(R"({"creator":"me","timestamp":42,"k":"v"})"));
  REQUIRE(p.ok());
  CHECK(p->docker_reference == "127.0.0.1:5000/lab/small");
  CHECK(p->creator == "me");
  CHECK(p->timestamp == 42);
  CHECK(p->optional["k"] == "v");
}

TEST_CASE("verifier: strict parser rejects extra, missing, duplicated and mistyped fields") {
  const std::string digest_obj = R"({"docker-manifest-digest":"sha256:)" + kHex + R"("})";
  struct Case {
    std::string name, payload, reason;
  };
  const std::vector<Case> bad = {
      {"not JSON", "{", "not valid JSON"},
      {"trailing data", Payload() + "x", "not valid JSON"},
      {"array", "[]", "not a JSON object"},
      {"extra top-level key", Payload().substr(0, Payload().size() - 1) + R"(,"extra":1})", "unknown key \"extra\""},
      {"missing optional", R"({"critical":{"identity":{"docker-reference":"a/b"},"image":)" + digest_obj +
                               R"(,"type":"cosign container image signature"}})",
       "\"optional\" is missing"},
      {"missing critical", R"({"optional":null})", "\"critical\" is missing"},
      {"extra critical key", R"({"critical":{"identity":{"docker-reference":"a/b"},"image":)" + digest_obj +
                                 R"(,"type":"cosign container image signature","x":1},"optional":null})",
       "critical: unknown key \"x\""},
      {"missing type", R"({"critical":{"identity":{"docker-reference":"a/b"},"image":)" + digest_obj +
                           R"(},"optional":null})",
       "\"type\" is missing"},
      {"wrong type value", Payload("null", R"("atomic container signature")"), "is not \"cosign container image signature\""},
      {"type not a string", Payload("null", "1"), "critical.type is not a string"},
      {"extra image key", Payload("null", R"("cosign container image signature")",
                                  R"({"docker-manifest-digest":"sha256:)" + kHex + R"(","x":"y"})"),
       "critical.image: unknown key \"x\""},
      {"digest not a string", Payload("null", R"("cosign container image signature")", R"({"docker-manifest-digest":5})"),
       "docker-manifest-digest is not a string"},
      {"digest malformed", Payload("null", R"("cosign container image signature")",
                                   R"({"docker-manifest-digest":"sha256:ABC"})"),
       "docker-manifest-digest"},
      {"identity extra key", Payload("null", R"("cosign container image signature")", digest_obj,
                                     R"({"docker-reference":"a/b","tag":"v1"})"),
       "critical.identity: unknown key \"tag\""},
      {"identity missing", Payload("null", R"("cosign container image signature")", digest_obj, "{}"),
       "\"docker-reference\" is missing"},
      {"reference not a string", Payload("null", R"("cosign container image signature")", digest_obj,
                                         R"({"docker-reference":null})"),
       "docker-reference is not a string"},
      {"optional a string", Payload(R"("annotations")"), "optional is neither null nor an object"},
      {"optional an array", Payload("[]"), "optional is neither null nor an object"},
      {"timestamp a string", Payload(R"({"timestamp":"1700000000"})"), "optional.timestamp is not an integer"},
      {"timestamp fractional", Payload(R"({"timestamp":1.5})"), "optional.timestamp is not an integer"},
      {"timestamp null", Payload(R"({"timestamp":null})"), "optional.timestamp is not an integer"},
      {"creator a number", Payload(R"({"creator":7})"), "optional.creator is not a string"},
      {"duplicate top-level key", Payload().substr(0, Payload().size() - 1) + R"(,"optional":null})",
       "duplicate key \"optional\""},
      {"duplicate nested key", Payload("null", R"("cosign container image signature")",
                                       R"({"docker-manifest-digest":"sha256:)" + kHex +
                                           R"(","docker-manifest-digest":"sha256:)" + kHex + R"("})"),
       "duplicate key \"docker-manifest-digest\""},
  };
  for (const Case& c : bad) {
    CAPTURE(c.name);
    auto parsed = ParseSimpleSigningPayload(c.payload);
    REQUIRE(!parsed.ok());
    CHECK(parsed.status().Is(Code::kDenied));
    CHECK_MESSAGE(parsed.status().message().find(c.reason) != std::string::npos, parsed.status().message());
  }
}

TEST_CASE("verifier: VerifySimpleSigning checks signature, shape and digest") {
  for (keys::KeyType type : {keys::KeyType::kEcdsaP256, keys::KeyType::kEd25519}) {
    CAPTURE(keys::KeyTypeName(type));
    auto key = keys::PrivateKey::Generate(type);
    REQUIRE(key.ok());
    auto pub = key->GetPublicKey();
    REQUIRE(pub.ok());
    auto other = keys::PrivateKey::Generate(type);
    REQUIRE(other.ok());
    auto other_pub = other->GetPublicKey();
    REQUIRE(other_pub.ok());

    const std::string payload = Payload();
    auto sig = key->Sign(payload);
    REQUIRE(sig.ok());
    const std::string b64 = oci::Base64Encode(*sig);

    auto ok = VerifySimpleSigning(payload, b64, *pub, kDigest);
    REQUIRE_MESSAGE(ok.ok(), ok.status().ToString());
    CHECK(ok->docker_reference == "127.0.0.1:5000/lab/small");
    // Go's base64 decoder skips CR and LF.
    CHECK(VerifySimpleSigning(payload, b64.substr(0, 10) + "\r\n" + b64.substr(10), *pub, kDigest).ok());

    auto wrong_key = VerifySimpleSigning(payload, b64, *other_pub, kDigest);
    CHECK(wrong_key.status().Is(Code::kDenied));
    auto wrong_digest = VerifySimpleSigning(payload, b64, *pub, oci::Digest::Sha256Of("x"));
    CHECK(wrong_digest.status().Is(Code::kDenied));
    CHECK(wrong_digest.status().message().find("not the image") != std::string::npos);
    auto tampered = VerifySimpleSigning(payload + " ", b64, *pub, kDigest);
    CHECK(tampered.status().Is(Code::kDenied));
    CHECK(VerifySimpleSigning(payload, "!!notbase64", *pub, kDigest).status().Is(Code::kDenied));
    CHECK(VerifySimpleSigning(payload, "", *pub, kDigest).status().Is(Code::kDenied));

    // A correctly signed payload with an extra field is still refused.
    const std::string extra = Payload().substr(0, Payload().size() - 1) + R"(,"extra":true})";
    auto extra_sig = key->Sign(extra);
    REQUIRE(extra_sig.ok());
    auto refused = VerifySimpleSigning(extra, oci::Base64Encode(*extra_sig), *pub, kDigest);
    CHECK(refused.status().Is(Code::kDenied));
    CHECK(refused.status().message().find("unknown key \"extra\"") != std::string::npos);
  }
}

TEST_CASE("verifier: VerifySignatures sorts layers into verified and rejected") {
  auto key = keys::PrivateKey::Generate(keys::KeyType::kEcdsaP256);
  REQUIRE(key.ok());
  auto pub = key->GetPublicKey();
  REQUIRE(pub.ok());
  const std::string payload = Payload();
  SignatureLayer good;
  good.layer_digest = oci::Digest::Sha256Of(payload);
  good.payload = payload;
  good.signature_b64 = oci::Base64Encode(*key->Sign(payload));
  SignatureLayer missing = good;
  missing.payload.clear();
  missing.problem = "blob unknown";
  SignatureLayer unsigned_layer = good;
  unsigned_layer.signature_b64.clear();
  auto report = VerifySignatures({good, missing, unsigned_layer}, *pub, kDigest);
  CHECK(report.ok());
  CHECK(report.verified.size() == 1);
  REQUIRE(report.rejected.size() == 2);
  CHECK(report.rejected[0].reason == "blob unknown");
  CHECK(SignatureTag(kDigest) == "sha256-" + kHex + ".sig");
}

TEST_CASE("verifier: docker config credentials") {
  const std::string path = "/tmp/portcullis-verifier-test-" + std::to_string(::getpid()) + ".json";
  {
    std::ofstream f(path);
    f << R"({"auths":{"127.0.0.1:5000":{"auth":")" << oci::Base64Encode("alice:s3:cret") << R"("},)"
      << R"("https://index.docker.io/v1/":{"auth":")" << oci::Base64Encode("hub:pw") << R"("},)"
      << R"("http://plain.example":{"username":"bob","password":"pw2"},)"
      << R"("broken.example":{"auth":"!!"}}})";
  }
  auto a = oci::LoadDockerCredentials("127.0.0.1:5000", path);
  REQUIRE(a.ok());
  REQUIRE(a->has_value());
  CHECK((*a)->username == "alice");
  CHECK((*a)->password == "s3:cret");
  auto hub = oci::LoadDockerCredentials("docker.io", path);
  REQUIRE(hub.ok());
  REQUIRE(hub->has_value());
  CHECK((*hub)->username == "hub");
  auto plain = oci::LoadDockerCredentials("plain.example", path);
  REQUIRE(plain.ok());
  REQUIRE(plain->has_value());
  CHECK((*plain)->password == "pw2");
  auto none = oci::LoadDockerCredentials("other.example", path);
  REQUIRE(none.ok());
  CHECK(!none->has_value());
  CHECK(!oci::LoadDockerCredentials("broken.example", path).ok());
  auto missing = oci::LoadDockerCredentials("127.0.0.1:5000", path + ".absent");
  REQUIRE(missing.ok());
  CHECK(!missing->has_value());
  std::remove(path.c_str());
  CHECK(oci::RegistryEndpointHost("docker.io") == "registry-1.docker.io");
  CHECK(oci::RegistryEndpointHost("127.0.0.1:5000") == "127.0.0.1:5000");
}

}  // namespace
}  // namespace portcullis::verifier
