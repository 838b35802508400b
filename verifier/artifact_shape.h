// What may pass the proxy's trust gate without a verdict of its own: signature
// artifacts, so that clients verifying for themselves (cosign, podman with
// sigstore attachments) still find them behind a gate that requires signatures.
//
// Everything here is chosen by whoever can push to the upstream, the party the
// gate distrusts. So nothing a pusher names decides (tags such as
// sha256-<hex>.sig, `subject`, `artifactType` alone): a manifest passes only
// when its whole SHAPE makes it useless as an image (verifier/policy.md,
// "What passes without a verdict"):
//
//  * a signature or attestation manifest: an image manifest whose every layer
//    is a signature, DSSE envelope or Sigstore bundle (at most 128 layers of at
//    most 1 MiB each), whose config is an image/cosign/empty config of at most
//    64 KiB and whose artifactType, when present, is a signature type; or
//  * a referrers-fallback index: an OCI index whose every entry is an image
//    manifest with an artifactType and no platform (at most 256 entries). Its
//    entries pass only on their own shape or verdict: listing vouches for nothing.
//
// The JSON must be strict (no duplicate keys, none that differ only in case,
// which Go clients would read differently from us). The blobs such an artifact
// names (ArtifactShape::blobs) may be served only as what they are: small JSON
// (IsArtifactBlob); they never become servable as image layers.
//
// Pure functions; thread-safe; never throw.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "oci/manifest.h"

namespace portcullis::verifier {

// Bounds of the artifact shape.
inline constexpr size_t kMaxArtifactLayers = 128;
inline constexpr int64_t kMaxArtifactLayerBytes = 1 << 20;
inline constexpr int64_t kMaxArtifactConfigBytes = 64 << 10;
inline constexpr size_t kMaxFallbackIndexEntries = 256;
// Largest artifact blob served (as JSON) without a verdict.
inline constexpr int64_t kMaxArtifactBlobBytes = kMaxArtifactLayerBytes;

struct ArtifactShape {
  enum class Kind { kNone, kSignature, kFallbackIndex };
  Kind kind = Kind::kNone;
  // Why it is not an artifact (kind kNone), for logs and tests.
  std::string why_not;
  // Blobs the artifact names (config and layers of a signature manifest).
  std::vector<oci::Descriptor> blobs;

  bool is_artifact() const { return kind != Kind::kNone; }
};

// Classifies the manifest `bytes` served with `media_type` (see above).
ArtifactShape ClassifyArtifact(std::string_view bytes, std::string_view media_type);

// True when `bytes` may be served as an artifact blob: at most
// kMaxArtifactBlobBytes and a JSON object (payloads, envelopes, bundles and
// configs all are; a tar or gzip layer never is).
bool IsArtifactBlob(std::string_view bytes);

}  // namespace portcullis::verifier
