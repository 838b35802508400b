// Media types and manifest / index parsing.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/digest.h"
#include "oci/status.h"

namespace portcullis::oci {

inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kOciEmptyConfig = "application/vnd.oci.image.config.v1+json";

// The Accept list sent upstream: every manifest type we can serve.
const std::string& ManifestAcceptHeader();

// Largest manifest accepted from an upstream or a client (4 MiB).
inline constexpr size_t kMaxManifestBytes = 4 * 1024 * 1024;

bool IsKnownManifestType(std::string_view media_type);
bool IsIndexType(std::string_view media_type);

struct Platform {
  std::string os, architecture, variant;
};

struct Descriptor {
  std::string media_type;
  Digest digest;
  int64_t size = 0;
  std::string artifact_type;
  std::map<std::string, std::string> annotations;
  std::optional<Platform> platform;
};

// A parsed image manifest or index. `media_type` is the effective type.
struct Manifest {
  std::string media_type;
  std::string artifact_type;
  std::optional<Descriptor> config;       // image manifests
  std::vector<Descriptor> layers;         // image manifests
  std::vector<Descriptor> manifests;      // indexes
  std::optional<Descriptor> subject;      // OCI 1.1
  std::map<std::string, std::string> annotations;

  bool IsIndex() const { return IsIndexType(media_type); }
  // Every blob an image manifest needs (config first, then layers).
  std::vector<Descriptor> Blobs() const;
};

// Parses `bytes`. `content_type` is the Content-Type it came with (may be empty);
// it must agree with the JSON "mediaType" field when both are present. The
// resulting type must be one of the four known manifest types, else
// MANIFEST_INVALID naming the type. Descriptors with malformed digests or
// negative sizes are MANIFEST_INVALID too.
StatusOr<Manifest> ParseManifest(std::string_view bytes, std::string_view content_type);

}  // namespace portcullis::oci
