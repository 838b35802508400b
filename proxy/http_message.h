// What the HTTP engine (proxy/http_engine.h) hands a handler and what the
// handler gives back: plain values, independent of the network library, so
// the registry and admin handlers are tested without sockets.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace portcullis::proxy {

// One request head, parsed and within the engine's limits. The body, if the
// client sent one, is never read: the engine answers and closes instead.
struct HttpRequest {
  std::string method;  // as sent: "GET", "HEAD", "POST", ...
  std::string path;    // percent-decoded, valid UTF-8, without the query
  std::string target;  // the request target as sent (path and query), for logs
  std::multimap<std::string, std::string> params;  // the query, percent-decoded
  std::vector<std::pair<std::string, std::string>> headers;  // as sent, in order
  std::string remote_addr;  // the client's IP address
  bool has_body = false;    // Content-Length > 0 or Transfer-Encoding present

  // The first value of header `name` (case-insensitive), or "".
  std::string Header(std::string_view name) const;
  bool HasHeader(std::string_view name) const;
  // The first value of query parameter `name`, or nullopt.
  std::optional<std::string> Param(const std::string& name) const;
  std::string ParamOr(const std::string& name, const std::string& fallback = "") const;
};

// True when `s` is valid UTF-8 (no overlong forms, surrogates or truncated
// sequences). Never throws.
bool IsValidUtf8(const std::string& s);

// Bytes of a streamed body without a copy of their own: `size` bytes at
// `data`, which stay valid and unchanged while `owner` (shared with whoever
// produced them: a fetch's window chunk, a chunk read from the store) lives.
struct BodyPiece {
  std::shared_ptr<const void> owner;
  const char* data = nullptr;
  size_t size = 0;

  void Reset() { *this = BodyPiece(); }
};

// A response body produced piece by piece: a blob from the store or from a
// fetch in progress, or the lines of a prefetch. The engine calls NextPiece()
// on its worker pool, one call at a time, until kEnd or kFailed; a source is
// destroyed (on any thread) when the response ends or the client goes away
// (pieces it gave out may outlive it: their owner keeps them).
class BodySource {
 public:
  virtual ~BodySource() = default;
  enum class Result {
    kData,    // *out holds the next bytes (at least one)
    kWait,    // nothing yet: ask again shortly (the engine backs off, never blocks)
    kEnd,     // every byte was given; *out may hold the last ones
    kFailed,  // cut the connection: the client must not see a complete body
  };
  // Appends at most `max` bytes to *out (which the engine empties first).
  // Must not block for long: wait for slow producers by returning kWait.
  virtual Result Next(std::string* out, size_t max) = 0;
  // The same, as a piece that may share memory the source already holds
  // (*out is empty on entry). This default copies: it calls Next() into a
  // string of its own.
  virtual Result NextPiece(BodyPiece* out, size_t max);
};

// Facts about a request for the access log and metrics, filled by the handler.
struct RequestLog {
  std::string route = "other";  // metrics label: base, manifest, blob, tags, referrers, other
  std::string cache;            // "hit", "miss" or ""
  std::string upstream;         // upstream name or ""
  std::string error;            // the OCI error code sent, if any
  std::string message;          // its message
  bool quiet = false;           // no access-log line (health checks, metrics scrapes)
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // besides Content-Type/-Length
  std::string content_type;
  // The body: `body`, or `stream` when set. A stream with `length` >= 0 is
  // sent with that Content-Length (and must give exactly that many bytes);
  // with -1 it is sent chunked. For HEAD nothing is sent after the head, and
  // `length` (when >= 0) is the Content-Length announced.
  std::string body;
  std::unique_ptr<BodySource> stream;
  int64_t length = -1;
  bool close = false;  // close the connection after this response
  RequestLog log;

  void SetHeader(std::string name, std::string value) { headers.emplace_back(std::move(name), std::move(value)); }
  void SetContent(std::string b, std::string type) {
    body = std::move(b);
    content_type = std::move(type);
  }
};

}  // namespace portcullis::proxy
