// Tests for oci/manifest.h: media types and manifest / index parsing.
#include "oci/manifest.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

using portcullis::Code;
using nlohmann::json;
using namespace portcullis::oci;

std::string H(char c) { return std::string(64, c); }
std::string D(char c) { return "sha256:" + H(c); }

json Desc(std::string_view media_type, char c, int64_t size) {
  return json{{"mediaType", media_type}, {"digest", D(c)}, {"size", size}};
}

// An image manifest with one config and two layers; `media_type` empty: no field.
json ImageManifest(std::string_view media_type, std::string_view layer_type) {
  json j = {{"schemaVersion", 2},
            {"config", Desc(kOciEmptyConfig, 'c', 7)},
            {"layers", json::array({Desc(layer_type, '1', 100), Desc(layer_type, '2', 200)})}};
  if (!media_type.empty()) j["mediaType"] = media_type;
  return j;
}

json Index(std::string_view media_type, std::string_view child_type) {
  json amd = Desc(child_type, 'a', 500);
  amd["platform"] = {{"os", "linux"}, {"architecture", "amd64"}};
  json arm = Desc(child_type, 'b', 501);
  arm["platform"] = {{"os", "linux"}, {"architecture", "arm64"}, {"variant", "v8"}};
  json j = {{"schemaVersion", 2}, {"manifests", json::array({amd, arm})}};
  if (!media_type.empty()) j["mediaType"] = media_type;
  return j;
}

const std::string kOciLayer = "application/vnd.oci.image.layer.v1.tar+gzip";
const std::string kDockerLayer = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const std::string kSchema1 = "application/vnd.docker.distribution.manifest.v1+prettyjws";

void CheckImage(const Manifest& m, const std::string& layer_type) {
  CHECK_FALSE(m.IsIndex());
  REQUIRE(m.config.has_value());
  CHECK(m.config->digest.ToString() == D('c'));
  CHECK(m.config->size == 7);
  REQUIRE(m.layers.size() == 2);
  CHECK(m.layers[0].media_type == layer_type);
  CHECK(m.layers[0].digest.ToString() == D('1'));
  CHECK(m.layers[0].size == 100);
  CHECK(m.layers[1].digest.ToString() == D('2'));
  CHECK(m.layers[1].size == 200);
  CHECK(m.manifests.empty());
  CHECK_FALSE(m.subject.has_value());
}

void CheckIndex(const Manifest& m, const std::string& child_type) {
  CHECK(m.IsIndex());
  CHECK_FALSE(m.config.has_value());
  CHECK(m.layers.empty());
  CHECK(m.Blobs().empty());
  REQUIRE(m.manifests.size() == 2);
  CHECK(m.manifests[0].media_type == child_type);
  CHECK(m.manifests[0].digest.ToString() == D('a'));
  CHECK(m.manifests[0].size == 500);
  REQUIRE(m.manifests[0].platform.has_value());
  CHECK(m.manifests[0].platform->os == "linux");
  CHECK(m.manifests[0].platform->architecture == "amd64");
  CHECK(m.manifests[0].platform->variant == "");
  REQUIRE(m.manifests[1].platform.has_value());
  CHECK(m.manifests[1].platform->architecture == "arm64");
  CHECK(m.manifests[1].platform->variant == "v8");
}

}  // namespace

TEST_CASE("oci: ParseManifest image manifests") {
  struct Case {
    std::string name;
    json doc;
    std::string content_type;
    std::string want_type;
    std::string layer_type;
  };
  const std::vector<Case> cases = {
      {"OCI with mediaType and Content-Type", ImageManifest(kOciManifest, kOciLayer), std::string(kOciManifest),
       std::string(kOciManifest), kOciLayer},
      {"OCI with mediaType, no Content-Type", ImageManifest(kOciManifest, kOciLayer), "", std::string(kOciManifest),
       kOciLayer},
      {"OCI without mediaType, Content-Type only", ImageManifest("", kOciLayer), std::string(kOciManifest),
       std::string(kOciManifest), kOciLayer},
      {"OCI without mediaType or Content-Type", ImageManifest("", kOciLayer), "", std::string(kOciManifest),
       kOciLayer},
      {"OCI without mediaType, generic JSON Content-Type", ImageManifest("", kOciLayer), "application/json",
       std::string(kOciManifest), kOciLayer},
      {"OCI with Content-Type parameters", ImageManifest(kOciManifest, kOciLayer),
       std::string(kOciManifest) + "; charset=utf-8", std::string(kOciManifest), kOciLayer},
      {"OCI with octet-stream Content-Type", ImageManifest(kOciManifest, kOciLayer), "application/octet-stream",
       std::string(kOciManifest), kOciLayer},
      {"Docker schema2", ImageManifest(kDockerManifest, kDockerLayer), std::string(kDockerManifest),
       std::string(kDockerManifest), kDockerLayer},
      {"Docker schema2, Content-Type only", ImageManifest("", kDockerLayer), std::string(kDockerManifest),
       std::string(kDockerManifest), kDockerLayer},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    auto m = ParseManifest(c.doc.dump(), c.content_type);
    REQUIRE_MESSAGE(m.ok(), m.status().ToString());
    CHECK(m->media_type == c.want_type);
    CheckImage(*m, c.layer_type);
  }
}

TEST_CASE("oci: ParseManifest indexes") {
  struct Case {
    std::string name;
    json doc;
    std::string content_type;
    std::string want_type;
    std::string child_type;
  };
  const std::vector<Case> cases = {
      {"OCI index", Index(kOciIndex, kOciManifest), std::string(kOciIndex), std::string(kOciIndex),
       std::string(kOciManifest)},
      {"OCI index without mediaType or Content-Type", Index("", kOciManifest), "", std::string(kOciIndex),
       std::string(kOciManifest)},
      {"OCI index, Content-Type only", Index("", kOciManifest), std::string(kOciIndex), std::string(kOciIndex),
       std::string(kOciManifest)},
      {"Docker manifest list", Index(kDockerManifestList, kDockerManifest), std::string(kDockerManifestList),
       std::string(kDockerManifestList), std::string(kDockerManifest)},
      {"Docker manifest list, mediaType only", Index(kDockerManifestList, kDockerManifest), "",
       std::string(kDockerManifestList), std::string(kDockerManifest)},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    auto m = ParseManifest(c.doc.dump(2), c.content_type);
    REQUIRE_MESSAGE(m.ok(), m.status().ToString());
    CHECK(m->media_type == c.want_type);
    CheckIndex(*m, c.child_type);
  }
}

TEST_CASE("oci: ParseManifest reads subject, artifactType and annotations") {
  json j = ImageManifest(kOciManifest, "application/vnd.dev.cosign.simplesigning.v1+json");
  j["artifactType"] = "application/vnd.dev.cosign.artifact.sig.v1+json";
  j["subject"] = Desc(kOciManifest, 'f', 1234);
  j["annotations"] = {{"org.opencontainers.image.created", "2024-01-01T00:00:00Z"}, {"k", "v"}, {"num", 5}};
  j["layers"][0]["annotations"] = {{"dev.cosignproject.cosign/signature", "MEUCIQ=="}};
  j["layers"][0]["artifactType"] = "application/x-layer-artifact";
  auto m = ParseManifest(j.dump(), kOciManifest);
  REQUIRE_MESSAGE(m.ok(), m.status().ToString());
  CHECK(m->artifact_type == "application/vnd.dev.cosign.artifact.sig.v1+json");
  REQUIRE(m->subject.has_value());
  CHECK(m->subject->media_type == kOciManifest);
  CHECK(m->subject->digest.ToString() == D('f'));
  CHECK(m->subject->size == 1234);
  // Non-string annotation values are skipped.
  CHECK(m->annotations == std::map<std::string, std::string>{
                              {"org.opencontainers.image.created", "2024-01-01T00:00:00Z"}, {"k", "v"}});
  REQUIRE(m->layers.size() == 2);
  CHECK(m->layers[0].annotations.at("dev.cosignproject.cosign/signature") == "MEUCIQ==");
  CHECK(m->layers[0].artifact_type == "application/x-layer-artifact");
  CHECK(m->layers[1].annotations.empty());

  // A referrers index carries artifactType and annotations on its descriptors.
  json idx = Index(kOciIndex, kOciManifest);
  idx["manifests"][0]["artifactType"] = "application/vnd.dev.sigstore.bundle.v0.3+json";
  idx["manifests"][0]["annotations"] = {{"a", "b"}};
  idx["subject"] = Desc(kOciIndex, 'e', 99);
  auto mi = ParseManifest(idx.dump(), "");
  REQUIRE_MESSAGE(mi.ok(), mi.status().ToString());
  CHECK(mi->manifests[0].artifact_type == "application/vnd.dev.sigstore.bundle.v0.3+json");
  CHECK(mi->manifests[0].annotations.at("a") == "b");
  REQUIRE(mi->subject.has_value());
  CHECK(mi->subject->digest.ToString() == D('e'));

  // "subject": null is the same as no subject.
  json nul = ImageManifest(kOciManifest, kOciLayer);
  nul["subject"] = nullptr;
  auto mn = ParseManifest(nul.dump(), kOciManifest);
  REQUIRE(mn.ok());
  CHECK_FALSE(mn->subject.has_value());
}

TEST_CASE("oci: ParseManifest rejects bad manifests with MANIFEST_INVALID") {
  auto with = [](json j, const std::string& ptr, json v) {
    j[json::json_pointer(ptr)] = std::move(v);
    return j.dump();
  };
  auto without = [](json j, const std::string& key) {
    j.erase(key);
    return j.dump();
  };
  const json image = ImageManifest(kOciManifest, kOciLayer);
  const json index = Index(kOciIndex, kOciManifest);
  struct Case {
    std::string name;
    std::string bytes;
    std::string content_type;
  };
  const std::vector<Case> cases = {
      {"empty", "", ""},
      {"not JSON", "{not json", std::string(kOciManifest)},
      {"JSON array", "[]", std::string(kOciManifest)},
      {"JSON string", "\"x\"", ""},
      {"Content-Type disagrees with mediaType", image.dump(), std::string(kDockerManifest)},
      {"index Content-Type for a manifest", image.dump(), std::string(kOciIndex)},
      {"manifest Content-Type for an index", index.dump(), std::string(kOciManifest)},
      {"schema1 Content-Type", without(ImageManifest("", kDockerLayer), "mediaType"), kSchema1},
      {"schema1 mediaType", ImageManifest(kSchema1, kDockerLayer).dump(), ""},
      {"unknown mediaType", ImageManifest("application/vnd.example+json", kOciLayer).dump(), ""},
      {"unknown Content-Type", ImageManifest("", kOciLayer).dump(), "text/plain"},
      {"mediaType not a string", with(image, "/mediaType", 5), ""},
      {"no config", without(image, "config"), std::string(kOciManifest)},
      {"layers not an array", with(image, "/layers", json::object()), ""},
      {"index without manifests", without(index, "manifests"), std::string(kOciIndex)},
      {"index manifests not an array", with(index, "/manifests", "x"), ""},
      {"bad digest in a layer", with(image, "/layers/1/digest", "sha256:xyz"), ""},
      {"uppercase digest in a layer", with(image, "/layers/0/digest", "sha256:" + std::string(64, 'A')), ""},
      {"layer without digest", with(image, "/layers/0", json{{"size", 1}}), ""},
      {"layer digest not a string", with(image, "/layers/0/digest", 12), ""},
      {"bad digest in config", with(image, "/config/digest", "sha256:"), ""},
      {"bad digest in index entry", with(index, "/manifests/1/digest", "md5:abc"), ""},
      {"bad digest in subject", with(image, "/subject", json{{"digest", "nope"}, {"size", 1}}), ""},
      {"subject not an object", with(image, "/subject", "x"), ""},
      {"layer not an object", with(image, "/layers/0", "sha256:" + H('1')), ""},
      {"negative size", with(image, "/layers/0/size", -1), ""},
      {"fractional size", with(image, "/layers/0/size", 1.5), ""},
      {"string size", with(image, "/config/size", "7"), ""},
      {"missing size", with(image, "/config", json{{"digest", D('c')}}), ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    auto m = ParseManifest(c.bytes, c.content_type);
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().code() == Code::kManifestInvalid);
    CHECK_FALSE(m.status().message().empty());
  }
}

TEST_CASE("oci: ParseManifest names the unsupported media type") {
  auto m = ParseManifest(ImageManifest("", kDockerLayer).dump(), kSchema1);
  REQUIRE_FALSE(m.ok());
  CHECK(m.status().code() == Code::kManifestInvalid);
  CHECK(m.status().message().find(kSchema1) != std::string::npos);
}

TEST_CASE("oci: ParseManifest enforces the 4 MiB limit") {
  std::string doc = ImageManifest(kOciManifest, kOciLayer).dump();
  REQUIRE(doc.size() < kMaxManifestBytes);
  std::string at_limit = doc + std::string(kMaxManifestBytes - doc.size(), ' ');
  REQUIRE(at_limit.size() == 4u * 1024 * 1024);
  auto ok = ParseManifest(at_limit, kOciManifest);
  CHECK_MESSAGE(ok.ok(), ok.status().ToString());
  auto big = ParseManifest(at_limit + " ", kOciManifest);
  REQUIRE_FALSE(big.ok());
  CHECK(big.status().code() == Code::kManifestInvalid);
}

TEST_CASE("oci: Manifest::Blobs lists config first, then layers in order") {
  json j = ImageManifest(kOciManifest, kOciLayer);
  j["layers"].push_back(Desc(kOciLayer, '3', 300));
  auto m = ParseManifest(j.dump(), "");
  REQUIRE(m.ok());
  auto blobs = m->Blobs();
  std::vector<std::string> got;
  for (const auto& b : blobs) got.push_back(b.digest.ToString());
  CHECK(got == std::vector<std::string>{D('c'), D('1'), D('2'), D('3')});

  // A manifest with no layers array needs only its config.
  json bare = ImageManifest(kOciManifest, kOciLayer);
  bare.erase("layers");
  auto mb = ParseManifest(bare.dump(), "");
  REQUIRE(mb.ok());
  REQUIRE(mb->Blobs().size() == 1);
  CHECK(mb->Blobs()[0].digest.ToString() == D('c'));
}

TEST_CASE("oci: media type helpers and the Accept header") {
  struct Case {
    std::string_view type;
    bool known, index;
  };
  const std::vector<Case> cases = {
      {kOciManifest, true, false},
      {kOciIndex, true, true},
      {kDockerManifest, true, false},
      {kDockerManifestList, true, true},
      {kSchema1, false, false},
      {"application/json", false, false},
      {"", false, false},
      {kOciEmptyConfig, false, false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.type);
    CHECK(IsKnownManifestType(c.type) == c.known);
    CHECK(IsIndexType(c.type) == c.index);
  }
  const std::string& accept = ManifestAcceptHeader();
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t comma = accept.find(',', start);
    std::string p = accept.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    while (!p.empty() && p.front() == ' ') p.erase(0, 1);
    while (!p.empty() && p.back() == ' ') p.pop_back();
    parts.push_back(p);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  CHECK(parts.size() == 4);
  for (auto t : {kOciManifest, kOciIndex, kDockerManifest, kDockerManifestList}) {
    CAPTURE(t);
    CHECK(std::find(parts.begin(), parts.end(), std::string(t)) != parts.end());
  }
}
