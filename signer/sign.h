// Signing an image digest the way `cosign sign --key` does in tag mode: a
// simple-signing payload, its signature in a layer annotation, and that layer
// appended to the manifest tagged sha256-<hex>.sig in the image's repository.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "keys/key.h"
#include "oci/digest.h"
#include "oci/status.h"
#include "signer/pusher.h"

namespace portcullis::signer {

struct SignRequest {
  std::string docker_reference;  // DockerReference() of the image as named
  std::map<std::string, std::string> annotations;
  bool recursive = false;  // also sign every manifest an index names (depth-first)
};

struct SignedImage {
  oci::Digest image_digest;
  oci::Digest payload_digest;
  std::string signature_tag;
  oci::Digest signature_manifest_digest;
  bool layer_added = false;     // false: this key had already signed this payload
  size_t signature_layers = 0;  // simple-signing layers now under the tag
};

// Signs `digest` in pusher.repo(). When the .sig tag exists its manifest is read
// and the new layer appended (other layers kept as they are); nothing is written
// when a layer with the same payload digest, media type and (other) annotations
// already carries a signature that `key` verifies, as cosign's duplicate detector
// does. Blobs go up before the manifest. Errors: registry errors, an existing
// .sig manifest that cannot be read.
StatusOr<SignedImage> SignDigest(Pusher& pusher, const oci::Digest& digest, const SignRequest& request,
                                 const keys::PrivateKey& key);

// SignDigest on `digest` and, with request.recursive and an index at `digest`,
// on every manifest the index names (nested indexes too). Results in signing order
// (the index first).
StatusOr<std::vector<SignedImage>> SignImage(Pusher& pusher, const oci::Digest& digest, const SignRequest& request,
                                             const keys::PrivateKey& key);

}  // namespace portcullis::signer
