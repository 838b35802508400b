// One GET hop over Boost.Beast, for bodies of hundreds of MiB (blobs).
//
// cpp-httplib (Debian's build) reads a body in 4 KiB pieces with a poll()
// before each read; for a 200 MiB layer that cost the fetch thread 0.09-0.13
// CPU-s more than reading the socket in large blocks, and hashing 4 KiB pieces
// 0.1 s more again (bench/README.md). Here the body reaches the caller in
// pieces of up to kStreamPiece bytes, read off the socket 64 KiB at a time.
//
// Internal to RegistryClient, which does the bearer flow and redirects around
// each hop and pools the connections; nothing else should call it.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "oci/http_client.h"
#include "oci/status.h"

namespace portcullis::oci::internal {

// The redirect statuses RegistryClient follows (both transports: their
// bodies are not the caller's, and on_headers does not see them).
inline bool IsRedirectStatus(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// The most body bytes handed to DataHandler in one call.
inline constexpr size_t kStreamPiece = 256 * 1024;
// The most body bytes of a non-2xx answer kept (an error page, a redirect).
inline constexpr size_t kStreamErrorBody = 64 * 1024;

// One kept-alive connection (plain or TLS) with its own Asio io_context, run
// by whichever thread has the connection checked out. Not thread-safe: one
// thread at a time (the pool hands it over under its lock).
class StreamConnection;
struct StreamConnectionDeleter {
  void operator()(StreamConnection* c) const;
};
using StreamConnectionPtr = std::unique_ptr<StreamConnection, StreamConnectionDeleter>;

// The TLS settings of a client's stream connections: peer verification
// against the system's CA bundle, or only `ca_file` when given (as
// cpp-httplib does). Immutable once made; shared by threads.
class StreamTls;
// UPSTREAM_UNAVAILABLE (as cpp-httplib's path answers) when the CA bundle
// cannot be loaded.
StatusOr<std::shared_ptr<StreamTls>> MakeStreamTls(const std::string& ca_file);

struct StreamHop {
  Url origin;
  std::string target;                                        // path and query, escaped
  std::vector<std::pair<std::string, std::string>> headers;  // sent after Host, as given
  // Optional, borrowed for the call: Cancel() from another thread ends the hop at once.
  StreamCancel* cancel = nullptr;
  const HeaderHandler* on_headers = nullptr;  // optional; not called for 401 and redirects
  const DataHandler* on_data = nullptr;       // required: a 2xx body goes here
  // Optional: a 2xx body with a Content-Length is read straight into the
  // room this gives (see BodySpace), then handed to on_data in place.
  const BodySpace* body_space = nullptr;
};

// Sends the hop's GET on `conn` (a pooled connection to hop.origin, or null: a
// new one is made; a pooled one found closed by the server is replaced once).
// A 2xx body goes to on_data (read into hop.body_space when given and the body
// has a Content-Length); any other body is kept, up to kStreamErrorBody
// (more: SIZE_INVALID). Transport failures, timeouts (opts.connect_timeout,
// and opts.read_timeout for each read or write) and cancellation are
// UPSTREAM_UNAVAILABLE; any HTTP status is a value. *aborted is set when a
// handler returned false; the answer so far is returned. On return `conn`
// holds the connection when it may carry another request, else null.
// `tls` is required for https origins. Never throws.
StatusOr<HttpResponse> StreamGet(StreamConnectionPtr& conn, const StreamHop& hop, const ClientOptions& opts,
                                 StreamTls* tls, bool* aborted);

}  // namespace portcullis::oci::internal
