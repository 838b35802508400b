// Signing an image digest as `cosign sign --key` (v3, --tlog-upload=false) does
// in the Sigstore bundle format: a v0.3 bundle with a message signature over
// the manifest (its messageDigest is the image digest), the public-key hint
// base64(sha256(SubjectPublicKeyInfo DER)), no transparency-log entry, stored as
// an OCI 1.1 referrer of the image (sigstore/cosign specs/BUNDLE_SPEC.md):
//   manifest  application/vnd.oci.image.manifest.v1+json
//   artifactType application/vnd.dev.sigstore.bundle.v0.3+json
//   config    the empty descriptor application/vnd.oci.empty.v1+json ("{}")
//   layers    [the bundle JSON, media type application/vnd.dev.sigstore.bundle.v0.3+json]
//   subject   the image manifest's descriptor
// pushed by digest. When the registry has no referrers API (GET
// /v2/<repo>/referrers/<digest> answers 404, 405, 400 or 501, or not an index),
// the referrers index is kept under the fallback tag sha256-<hex> (OCI
// distribution-spec): the existing index is read and the new referrer appended.
//
// Only ECDSA P-256 and RSA keys: their signatures over the manifest are checked
// from the digest alone (verifier/sigstore/verify.h); others are INVALID_ARGUMENT.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "keys/key.h"
#include "oci/digest.h"
#include "oci/status.h"
#include "signer/pusher.h"

namespace portcullis::signer {

inline constexpr std::string_view kEmptyMediaType = "application/vnd.oci.empty.v1+json";

struct BundleSigned {
  oci::Digest image_digest;
  oci::Digest bundle_digest;    // the bundle blob
  oci::Digest referrer_digest;  // the referrer manifest
  bool referrers_api = false;   // false: the fallback tag was written
  std::string fallback_tag;     // "sha256-<hex>" when !referrers_api
  size_t fallback_entries = 0;  // entries of the fallback index after the update
};

// The bundle JSON for `manifest` (its bytes) signed by `key`.
StatusOr<std::string> MakeKeyBundle(std::string_view manifest, const keys::PrivateKey& key);

// Signs `digest` in pusher.repo() and pushes bundle, referrer and (when needed)
// the fallback index; `created` is the RFC 3339 org.opencontainers.image.created
// annotation. Errors: registry errors, a fallback tag that holds something other
// than an image index (left untouched), an unsupported key type.
StatusOr<BundleSigned> SignDigestBundle(Pusher& pusher, const oci::Digest& digest, const keys::PrivateKey& key,
                                        const std::string& created);

}  // namespace portcullis::signer
