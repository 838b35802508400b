// The cosign simple-signing payload, byte for byte as cosign writes it
// (sigstore/sigstore pkg/signature/payload: json.Marshal of SimpleContainerImage):
//   {"critical":{"identity":{"docker-reference":"<repo>"},"image":{"docker-manifest-digest":"<digest>"},
//    "type":"cosign container image signature"},"optional":null}
// with `optional` the annotation map (keys sorted) when there are annotations.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "oci/digest.h"
#include "oci/status.h"

namespace portcullis::signer {

// The docker-reference cosign writes for an image named `image` as the user typed
// it (tag and digest are dropped): go-containerregistry's Repository.Name().
//   "127.0.0.1:5000/lab/small:v1"  → "127.0.0.1:5000/lab/small"   (registry as written)
//   "alpine", "docker.io/alpine"   → "index.docker.io/library/alpine"
//   "docker.io/team/app"           → "index.docker.io/team/app"
//   "index.docker.io/alpine"       → "index.docker.io/library/alpine"
// The first component is a registry when it contains '.' or ':' (ggcr's rule);
// "localhost/x" is the one difference: ggcr would read it as Docker Hub's
// "localhost/x", Portcullis (like docker) as registry "localhost", and writes
// "localhost/x". Errors: an empty or malformed name.
StatusOr<std::string> DockerReference(std::string_view image);

// The payload bytes for `digest` (see above). `annotations` empty → "optional":null.
std::string BuildPayload(std::string_view docker_reference, const oci::Digest& digest,
                         const std::map<std::string, std::string>& annotations);

// Parses "-a key=value" arguments: split at the first '=', the key must not be
// empty; a repeated key keeps the last value (as cosign's map does). Note: cosign
// itself refuses values containing '='; Portcullis accepts them.
StatusOr<std::map<std::string, std::string>> ParseAnnotations(const std::vector<std::string>& args);

}  // namespace portcullis::signer
