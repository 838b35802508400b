// The `.sig` signature manifest and its config blob, serialised as cosign's
// go-containerregistry does (json.Marshal of v1.Manifest / v1.ConfigFile), so a
// manifest Portcullis writes has the digest cosign would give the same content.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/status.h"

namespace portcullis::signer {

// go-containerregistry v1.Descriptor (the fields a signature manifest uses;
// "data" and "platform" are not kept).
struct GoDescriptor {
  std::string media_type;
  int64_t size = 0;
  std::string digest;
  std::vector<std::string> urls;
  std::map<std::string, std::string> annotations;
  std::string artifact_type;

  bool operator==(const GoDescriptor&) const = default;
};

struct SigManifest {
  std::string media_type = "application/vnd.oci.image.manifest.v1+json";
  GoDescriptor config;
  std::vector<GoDescriptor> layers;
  std::map<std::string, std::string> annotations;
  std::optional<GoDescriptor> subject;
};

// {"schemaVersion":2,"mediaType":...,"config":{...},"layers":[...]} with ggcr's
// field order and omitempty rules; strings escaped as Go does.
std::string MarshalSigManifest(const SigManifest& m);

// Reads an existing signature manifest (ours, cosign's, anyone's) into the
// fields above. MANIFEST_INVALID when it is not an image manifest with a config
// and a layers array of well-formed descriptors.
StatusOr<SigManifest> ParseSigManifest(std::string_view bytes);

// The config blob for a signature manifest whose layers have these digests, as
// ggcr's mutate.Append builds it on cosign's empty image: one diff_id and one
// history entry (zero "created" time) per layer:
//   {"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],
//    "os":"","rootfs":{"type":"layers","diff_ids":["sha256:..."]},"config":{}}
std::string SigConfigBlob(const std::vector<std::string>& layer_digests);

}  // namespace portcullis::signer
