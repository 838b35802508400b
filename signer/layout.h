// Pushing an OCI image layout (index.json + blobs/<alg>/<hex>) to a registry,
// as `skopeo copy oci:DIR:REF docker://...` does for an unchanged image: blobs
// the registry lacks are uploaded (streamed from disk), manifests are PUT byte
// for byte (so digests are the layout's), children before their index, the tag last.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "oci/digest.h"
#include "oci/manifest.h"
#include "oci/status.h"
#include "signer/pusher.h"

namespace portcullis::signer {

inline constexpr std::string_view kRefNameAnnotation = "org.opencontainers.image.ref.name";

// The manifest descriptor of `layout_dir`'s index.json to push: the one whose
// org.opencontainers.image.ref.name is `ref` (exactly one must match), or with
// `ref` empty the only manifest listed. Errors name the layout, the choices and
// the problem (no index.json, not an OCI layout, no match, ambiguous).
StatusOr<oci::Descriptor> SelectLayoutManifest(const std::string& layout_dir, const std::string& ref);

// What PushLayout reports as it goes (for progress lines).
struct PushEvent {
  enum Kind { kBlobSkipped, kBlobStart, kBlobProgress, kBlobDone, kManifestDone } kind;
  oci::Digest digest;
  int64_t size = 0;
  int64_t sent = 0;
};
using PushObserver = std::function<void(const PushEvent&)>;

struct PushedLayout {
  oci::Digest digest;  // of the manifest pushed under the tag
  std::string media_type;
  int blobs_uploaded = 0;
  int blobs_skipped = 0;
  int manifests_pushed = 0;
};

// Pushes the manifest `top` of `layout_dir` (and all it references) to
// pusher.repo(), tagging it `tag` (a tag, or the digest itself). Every manifest
// read from the layout must match its descriptor's digest and size.
StatusOr<PushedLayout> PushLayout(Pusher& pusher, const std::string& layout_dir, const oci::Descriptor& top,
                                  const std::string& tag, const PushObserver& observer = nullptr);

}  // namespace portcullis::signer
