// Sends blob bytes (PUT / PATCH of an upload session) with the body streamed
// from a file or a buffer, so a layer is never held in memory whole.
// oci::RegistryClient takes request bodies as strings; this transport keeps its
// own connection and repeats the registry's auth flow (Bearer token for
// `scope`, or Basic) for the upload URLs on the registry's origin. Credentials
// never go to another origin. Not thread-safe: one per pushing thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "oci/http_client.h"
#include "oci/status.h"

namespace httplib {
class Client;
}

namespace portcullis::signer {

// Body bytes: `memory` when fd < 0, else `length` bytes of file `fd` from `offset`.
struct BodySource {
  std::string_view memory;
  int fd = -1;
  int64_t offset = 0;
  int64_t length = 0;

  static BodySource Memory(std::string_view m) { return BodySource{m, -1, 0, static_cast<int64_t>(m.size())}; }
  static BodySource File(int fd, int64_t offset, int64_t length) { return BodySource{{}, fd, offset, length}; }
  int64_t size() const { return fd < 0 ? static_cast<int64_t>(memory.size()) : length; }
};

// Called with the number of body bytes sent so far.
using SentFn = std::function<void(int64_t sent)>;

class UploadTransport {
 public:
  UploadTransport(oci::Url base, std::optional<oci::Credentials> credentials, std::string scope,
                  oci::ClientOptions options);
  ~UploadTransport();
  UploadTransport(const UploadTransport&) = delete;
  UploadTransport& operator=(const UploadTransport&) = delete;

  // Sends `method` to `url` (absolute "http[s]://host[:port]/path?query", or
  // "/path?query" on the registry) with `body` as application/octet-stream.
  // Any HTTP status is returned as a value (body kept up to 64 KiB); transport
  // failures are UPSTREAM_UNAVAILABLE, a file read error IO_ERROR.
  StatusOr<oci::HttpResponse> Send(const std::string& method, const std::string& url, const oci::Headers& headers,
                                   const BodySource& body, const SentFn& on_sent = nullptr);

 private:
  struct Target {
    oci::Url origin;
    std::string path;  // path and query
  };
  StatusOr<Target> Resolve(const std::string& url) const;
  httplib::Client& ClientFor(const oci::Url& origin);
  StatusOr<oci::HttpResponse> Once(const Target& t, const std::string& method, const oci::Headers& headers,
                                   const BodySource* body, const std::string& authorization, const SentFn& on_sent);
  // Sets authorization_ from a 401 answer's challenge.
  Status Authorize(const oci::HttpResponse& challenge_response);

  oci::Url base_;
  std::optional<oci::Credentials> credentials_;
  std::string scope_;
  oci::ClientOptions options_;
  std::map<std::string, std::unique_ptr<httplib::Client>> clients_;  // by origin
  std::string authorization_;                                        // for base_'s origin; "" = anonymous so far
  bool probed_ = false;
};

}  // namespace portcullis::signer
