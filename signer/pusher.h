// Writing to one repository of a registry: blobs (skipped when present,
// uploaded monolithically or in chunks, bodies streamed) and manifests.
// Not thread-safe (one upload transport); the RegistryClient may be shared.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "oci/digest.h"
#include "oci/http_client.h"
#include "oci/status.h"
#include "signer/upload_transport.h"
#include "oci/remote.h"

namespace portcullis::signer {

// Blobs up to this size go up in one PUT; larger ones in PATCH chunks.
inline constexpr int64_t kMonolithicMaxBytes = 64ll << 20;
inline constexpr int64_t kChunkBytes = 32ll << 20;

class Pusher {
 public:
  // `remote` must outlive the Pusher. Every request uses the push scope of `repo`.
  Pusher(const oci::Remote& remote, std::string repo);

  oci::RegistryClient& client() const { return *remote_.client; }
  const std::string& repo() const { return repo_; }
  const std::string& scope() const { return scope_; }

  // HEAD /v2/<repo>/blobs/<digest>: true on 200, false on 404; else an error.
  StatusOr<bool> BlobExists(const oci::Digest& digest);

  // Uploads `bytes` as blob `digest` unless it exists. Returns true when uploaded.
  StatusOr<bool> PushBlob(const oci::Digest& digest, std::string_view bytes);

  // Uploads the file at `path` (exactly `size` bytes) as blob `digest` unless it
  // exists, streaming it from disk: one PUT up to kMonolithicMaxBytes, else PATCH
  // chunks of kChunkBytes and a closing PUT. `on_sent` sees the bytes sent so far.
  // The registry checks the digest (DIGEST_INVALID names a mismatch).
  StatusOr<bool> PushBlobFile(const oci::Digest& digest, const std::string& path, int64_t size,
                              const SentFn& on_sent = nullptr);

  // PUT /v2/<repo>/manifests/<ref> with `bytes` unchanged and Content-Type
  // `media_type`. Returns sha256 of the bytes (a Docker-Content-Digest answer that
  // disagrees is UPSTREAM_INVALID).
  StatusOr<oci::Digest> PushManifest(std::string_view bytes, std::string_view media_type, const std::string& ref);

 private:
  StatusOr<bool> Upload(const oci::Digest& digest, const BodySource& body, const SentFn& on_sent);
  StatusOr<std::string> StartUpload();

  const oci::Remote& remote_;
  std::string repo_;
  std::string scope_;
  UploadTransport transport_;
};

// "<location>?digest=<d>" or "<location>&digest=<d>" when it has a query already.
std::string WithDigestQuery(const std::string& location, const oci::Digest& digest);

}  // namespace portcullis::signer
