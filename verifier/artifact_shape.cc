#include "verifier/artifact_shape.h"

#include <array>
#include <nlohmann/json.hpp>

#include "verifier/discovery.h"
#include "verifier/signatures.h"
#include "verifier/strict_json.h"

namespace portcullis::verifier {

namespace {

// Configs a signature manifest may carry: cosign's legacy .sig and .att use an
// (empty) image config, older cosign referrers the artifact type, OCI 1.1 the
// empty descriptor.
constexpr std::array<std::string_view, 4> kConfigTypes = {
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
    kCosignSignatureArtifactType,
    "application/vnd.oci.empty.v1+json",
};

// Layers that are signatures, attestations or bundles: JSON documents, never
// file-system layers.
constexpr std::array<std::string_view, 6> kLayerTypes = {
    kSimpleSigningMediaType,
    "application/vnd.dsse.envelope.v1+json",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
};

// artifactType values of signature and attestation manifests.
constexpr std::array<std::string_view, 5> kArtifactTypes = {
    kCosignSignatureArtifactType,
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dsse.envelope.v1+json",
    "application/vnd.in-toto+json",
};

template <size_t N>
bool OneOf(const std::array<std::string_view, N>& set, std::string_view v) {
  for (std::string_view s : set) {
    if (s == v) return true;
  }
  return false;
}

ArtifactShape No(std::string why) {
  ArtifactShape s;
  s.why_not = std::move(why);
  return s;
}

ArtifactShape ClassifySignatureManifest(const oci::Manifest& m) {
  if (!m.artifact_type.empty() && !OneOf(kArtifactTypes, m.artifact_type)) {
    return No("artifactType " + m.artifact_type + " is not a signature type");
  }
  if (!m.config) return No("no config");
  if (!OneOf(kConfigTypes, m.config->media_type)) return No("config type " + m.config->media_type);
  if (m.config->size > kMaxArtifactConfigBytes) return No("config over the size bound");
  if (m.layers.empty()) return No("no layers");
  if (m.layers.size() > kMaxArtifactLayers) return No("more layers than a signature manifest has");
  for (const oci::Descriptor& l : m.layers) {
    if (!OneOf(kLayerTypes, l.media_type)) return No("layer type " + l.media_type + " is not a signature");
    if (l.size > kMaxArtifactLayerBytes) return No("a layer over the size bound");
  }
  ArtifactShape s;
  s.kind = ArtifactShape::Kind::kSignature;
  s.blobs = m.Blobs();
  return s;
}

ArtifactShape ClassifyFallbackIndex(const oci::Manifest& m) {
  if (m.media_type != oci::kOciIndex) return No("not an OCI index");
  if (m.manifests.size() > kMaxFallbackIndexEntries) return No("more entries than the bound");
  for (const oci::Descriptor& d : m.manifests) {
    if (d.media_type != oci::kOciManifest) return No("an entry of type " + d.media_type);
    if (d.artifact_type.empty()) return No("an entry without artifactType");
    if (d.platform) return No("an entry with a platform");
  }
  ArtifactShape s;
  s.kind = ArtifactShape::Kind::kFallbackIndex;
  return s;
}

}  // namespace

ArtifactShape ClassifyArtifact(std::string_view bytes, std::string_view media_type) {
  // Strict first: the decision below must be about the document Go clients read.
  auto strict = ParseStrictJson(bytes, KeyMatch::kCaseInsensitive);
  if (!strict.ok()) return No("not strict JSON: " + strict.status().message());
  if (!strict->is_object()) return No("not a JSON object");
  auto m = oci::ParseManifest(bytes, media_type);
  if (!m.ok()) return No(m.status().message());
  return m->IsIndex() ? ClassifyFallbackIndex(*m) : ClassifySignatureManifest(*m);
}

bool IsArtifactBlob(std::string_view bytes) {
  if (static_cast<int64_t>(bytes.size()) > kMaxArtifactBlobBytes) return false;
  size_t i = 0;
  while (i < bytes.size() && (bytes[i] == ' ' || bytes[i] == '\t' || bytes[i] == '\n' || bytes[i] == '\r')) ++i;
  if (i == bytes.size() || bytes[i] != '{') return false;
  return nlohmann::json::accept(bytes.begin(), bytes.end());
}

}  // namespace portcullis::verifier
