// Unit tests of what passes the gate without a verdict (verifier/artifact_shape):
// a table of manifests a pusher could write, each either a signature artifact by
// its whole shape or not.
#include "verifier/artifact_shape.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

namespace portcullis::verifier {
namespace {

using nlohmann::json;

const std::string kSS = "application/vnd.dev.cosign.simplesigning.v1+json";
const std::string kCfg = "application/vnd.oci.image.config.v1+json";
const std::string kTar = "application/vnd.oci.image.layer.v1.tar+gzip";
const std::string kCosign = "application/vnd.dev.cosign.artifact.sig.v1+json";
const std::string kM = "application/vnd.oci.image.manifest.v1+json";
const std::string kI = "application/vnd.oci.image.index.v1+json";

json D(const std::string& mt, int64_t size = 300, char seed = 'a') {
  return {{"mediaType", mt}, {"digest", oci::Digest::Sha256Of(std::string(1, seed) + mt).ToString()}, {"size", size}};
}

json M(json layers, json config = D(kCfg, 233), json extra = json::object()) {
  json j = {{"schemaVersion", 2}, {"mediaType", kM}, {"config", config}, {"layers", layers}};
  for (auto& [k, v] : extra.items()) j[k] = v;
  return j;
}

TEST_CASE("artifact shape: signature and attestation manifests pass; anything runnable does not") {
  json many = json::array();
  for (int i = 0; i < 129; ++i) many.push_back(D(kSS, 300, static_cast<char>('a' + i % 26)));
  json tagged_platform = D(kM);
  tagged_platform["artifactType"] = kCosign;
  tagged_platform["platform"] = {{"os", "linux"}, {"architecture", "amd64"}};
  json with_type = D(kM);
  with_type["artifactType"] = kCosign;
  struct Case {
    const char* name;
    std::string bytes;
    std::string media_type;
    ArtifactShape::Kind want;
  };
  std::vector<Case> cases = {
      {"cosign .sig", M(json::array({D(kSS), D(kSS, 300, 'b')})).dump(), kM, ArtifactShape::Kind::kSignature},
      {"cosign .att (DSSE)", M(json::array({D("application/vnd.dsse.envelope.v1+json")})).dump(), kM,
       ArtifactShape::Kind::kSignature},
      {"cosign referrer", M(json::array({D(kSS)}), D("application/vnd.oci.empty.v1+json", 2),
                            {{"artifactType", kCosign}, {"subject", D(kM)}}).dump(),
       kM, ArtifactShape::Kind::kSignature},
      {"v3 bundle referrer", M(json::array({D("application/vnd.dev.sigstore.bundle.v0.3+json")}),
                               D("application/vnd.oci.empty.v1+json", 2),
                               {{"artifactType", "application/vnd.dev.sigstore.bundle.v0.3+json"}}).dump(),
       kM, ArtifactShape::Kind::kSignature},
      {"a tar layer", M(json::array({D(kSS), D(kTar)})).dump(), kM, ArtifactShape::Kind::kNone},
      {"a tar layer with a cosign artifactType", M(json::array({D(kTar)}), D(kCfg), {{"artifactType", kCosign}}).dump(),
       kM, ArtifactShape::Kind::kNone},
      {"a tar layer with a subject", M(json::array({D(kTar)}), D(kCfg), {{"subject", D(kM)}}).dump(), kM,
       ArtifactShape::Kind::kNone},
      {"cosign config type, tar layer", M(json::array({D(kTar)}), D(kCosign)).dump(), kM, ArtifactShape::Kind::kNone},
      {"an SBOM is not a signature", M(json::array({D("text/spdx+json")})).dump(), kM, ArtifactShape::Kind::kNone},
      {"an unknown artifactType", M(json::array({D(kSS)}), D(kCfg), {{"artifactType", "application/x-evil"}}).dump(), kM,
       ArtifactShape::Kind::kNone},
      {"no layers", M(json::array()).dump(), kM, ArtifactShape::Kind::kNone},
      {"too many layers", M(many).dump(), kM, ArtifactShape::Kind::kNone},
      {"an oversized payload", M(json::array({D(kSS, (1 << 20) + 1)})).dump(), kM, ArtifactShape::Kind::kNone},
      {"an oversized config", M(json::array({D(kSS)}), D(kCfg, (64 << 10) + 1)).dump(), kM, ArtifactShape::Kind::kNone},
      {"a runnable config type", M(json::array({D(kSS)}), D("application/x-other-config")).dump(), kM,
       ArtifactShape::Kind::kNone},
      {"fallback index", json({{"schemaVersion", 2}, {"mediaType", kI}, {"manifests", json::array({with_type})}}).dump(),
       kI, ArtifactShape::Kind::kFallbackIndex},
      {"empty fallback index", json({{"schemaVersion", 2}, {"mediaType", kI}, {"manifests", json::array()}}).dump(), kI,
       ArtifactShape::Kind::kFallbackIndex},
      {"an image index", json({{"schemaVersion", 2}, {"mediaType", kI}, {"manifests", json::array({D(kM)})}}).dump(),
       kI, ArtifactShape::Kind::kNone},
      {"an entry with a platform",
       json({{"schemaVersion", 2}, {"mediaType", kI}, {"manifests", json::array({tagged_platform})}}).dump(), kI,
       ArtifactShape::Kind::kNone},
      {"a nested index entry",
       json({{"schemaVersion", 2}, {"mediaType", kI}, {"manifests", json::array({[&] {
               json d = D(kI);
               d["artifactType"] = kCosign;
               return d;
             }()})}}).dump(),
       kI, ArtifactShape::Kind::kNone},
      {"a Docker manifest list",
       json({{"schemaVersion", 2},
             {"mediaType", "application/vnd.docker.distribution.manifest.list.v2+json"},
             {"manifests", json::array({with_type})}}).dump(),
       "application/vnd.docker.distribution.manifest.list.v2+json", ArtifactShape::Kind::kNone},
      // Go reads "Layers" into the same field (case-insensitive); nlohmann would not.
      {"layers and Layers",
       R"({"schemaVersion":2,"mediaType":")" + kM + R"(","config":)" + D(kCfg).dump() + R"(,"layers":[)" +
           D(kSS).dump() + R"(],"Layers":[)" + D(kTar).dump() + "]}",
       kM, ArtifactShape::Kind::kNone},
      {"a duplicate key",
       R"({"schemaVersion":2,"mediaType":")" + kM + R"(","config":)" + D(kCfg).dump() + R"(,"layers":[)" +
           D(kTar).dump() + R"(],"layers":[)" + D(kSS).dump() + "]}",
       kM, ArtifactShape::Kind::kNone},
      {"a case-colliding key in a descriptor",
       R"({"schemaVersion":2,"mediaType":")" + kM + R"(","config":)" + D(kCfg).dump() +
           R"(,"layers":[{"mediaType":")" + kSS + R"(","MediaType":")" + kTar + R"(","digest":")" +
           oci::Digest::Sha256Of("x").ToString() + R"(","size":3}]})",
       kM, ArtifactShape::Kind::kNone},
      {"not JSON", "\x1f\x8b garbage", kM, ArtifactShape::Kind::kNone},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    ArtifactShape s = ClassifyArtifact(c.bytes, c.media_type);
    CHECK_MESSAGE(s.kind == c.want, s.why_not);
    if (c.want == ArtifactShape::Kind::kNone) CHECK(!s.why_not.empty());
  }
  ArtifactShape sig = ClassifyArtifact(cases[0].bytes, kM);
  CHECK(sig.blobs.size() == 3);  // config and both payloads
  CHECK(ClassifyArtifact(cases[15].bytes, kI).blobs.empty());  // an index names no blobs
}

TEST_CASE("artifact shape: artifact blobs are served only as small JSON objects") {
  CHECK(IsArtifactBlob(R"({"critical":{},"optional":null})"));
  CHECK(IsArtifactBlob("  \n{\"a\":1}"));
  CHECK_FALSE(IsArtifactBlob(""));
  CHECK_FALSE(IsArtifactBlob("[1,2]"));
  CHECK_FALSE(IsArtifactBlob("\"string\""));
  CHECK_FALSE(IsArtifactBlob(std::string("evil.sh\0\0\0\0", 11) + std::string(500, '\0')));
  CHECK_FALSE(IsArtifactBlob("\x1f\x8b\x08\x00"));
  CHECK_FALSE(IsArtifactBlob("{\"a\":1} trailing"));
  CHECK_FALSE(IsArtifactBlob("{\"a\":\"" + std::string(kMaxArtifactBlobBytes, 'x') + "\"}"));
}

}  // namespace
}  // namespace portcullis::verifier
