// Reading manifests and small blobs from a registry, with the digest checks a
// verifier needs: the bytes returned always hash to the digest they are named by.
// Every function takes the token scope to use; empty means PullScope(repo).
// Thread-safe as RegistryClient is.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "oci/digest.h"
#include "oci/http_client.h"
#include "oci/status.h"

namespace portcullis::oci {

struct FetchedManifest {
  std::string bytes;       // exactly as served
  std::string media_type;  // the Content-Type (parameters stripped), else the JSON mediaType
  Digest digest;      // sha256 of bytes
};

// GET /v2/<repo>/manifests/<ref> with the full Accept list. nullopt when the
// registry answers 404. When `ref` is a digest the bytes must hash to it
// (DIGEST_INVALID otherwise); a Docker-Content-Digest header that disagrees with
// the bytes is UPSTREAM_INVALID. Other statuses: HttpError.
StatusOr<std::optional<FetchedManifest>> GetManifest(RegistryClient& client, const std::string& repo,
                                                     const std::string& ref, const std::string& scope = "");

// The digest of the manifest `ref` (a tag or a digest) names: HEAD with the full
// Accept list and its Docker-Content-Digest; when the header is absent, GET and
// sha256 of the body. MANIFEST_UNKNOWN when there is no such manifest.
StatusOr<Digest> ResolveDigest(RegistryClient& client, const std::string& repo, const std::string& ref,
                                    const std::string& scope = "");

// GET /v2/<repo>/blobs/<digest>, at most `max_bytes`; the bytes must hash to
// `digest` (DIGEST_INVALID otherwise). BLOB_UNKNOWN on 404; SIZE_INVALID when larger.
StatusOr<std::string> GetBlob(RegistryClient& client, const std::string& repo, const Digest& digest,
                              size_t max_bytes, const std::string& scope = "");

// A Status for an unexpected HTTP answer to `what` ("GET /v2/x/manifests/y"):
// 401 UNAUTHORIZED, 403 DENIED, 404 NOT_FOUND, 429 TOO_MANY_REQUESTS, 5xx
// UPSTREAM_UNAVAILABLE, else UPSTREAM_INVALID; the message carries the status
// and the registry's first error code and message when the body is OCI error JSON.
Status HttpError(const std::string& what, const HttpResponse& response);

}  // namespace portcullis::oci
