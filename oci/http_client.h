// A registry HTTP client: connection reuse, the bearer-token challenge flow,
// Basic auth, redirects (across hosts without credentials), timeouts, and
// streaming bodies. Used by the proxy (pull) and by the signer (push).
//
// Thread-safe: one RegistryClient may serve many threads; each request checks a
// connection out of a small bounded pool.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "oci/status.h"

namespace httplib {
class Client;
}

namespace portcullis::oci {
namespace internal {
class StreamTls;
}

struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;
  int port = 0;
  std::string path;    // "/..." or empty

  // "scheme://host:port"
  std::string Origin() const;
};

// Parses "http[s]://host[:port][/path]". INVALID_ARGUMENT names the problem.
StatusOr<Url> ParseUrl(std::string_view s);

// Case-insensitive header map, as HTTP wants.
struct CaseLess {
  bool operator()(const std::string& a, const std::string& b) const;
};
using Headers = std::multimap<std::string, std::string, CaseLess>;
std::string HeaderValue(const Headers& h, const std::string& name);

struct Credentials {
  std::string username;
  std::string password;
};

struct ClientOptions {
  std::chrono::seconds connect_timeout{10};
  std::chrono::seconds read_timeout{60};
  std::string ca_file;      // extra CA bundle for https; empty: system bundle
  std::string user_agent = "portcullis/0.1";
  size_t max_idle_connections = 16;  // per origin, for each transport (httplib, streamed GETs)
};

// Lets another thread abandon a request in progress (a fetch past its
// deadline, or one cancelled to free its slot): Cancel() shuts the request's
// connection down, so a Do/Stream blocked in a read returns
// UPSTREAM_UNAVAILABLE at once, and any later request carrying it fails before
// it connects. Thread-safe; one StreamCancel may be shared by many requests.
class StreamCancel {
 public:
  void Cancel();
  bool cancelled() const;

  // For transports: registers `abort`, which Cancel() runs (under this
  // object's lock, so it must not block) to end the request keyed `key`.
  // False, and nothing registered, when already cancelled. DetachAbort
  // returns only when no abort for `key` runs or will run.
  bool AttachAbort(const void* key, std::function<void()> abort);
  void DetachAbort(const void* key);

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<const void*, std::function<void()>>> aborts_;  // requests in progress
  bool cancelled_ = false;
};

// Optional, beside a DataHandler: where the next bytes of a 2xx body may be
// read to, so they need no copy of their own. Called on the streaming thread
// before a read; may block (as DataHandler may) until there is room; returns
// at least one byte of room, or {nullptr, 0} to abandon. Bytes read there are
// then handed to the DataHandler at that same address. A transport may
// ignore it (cpp-httplib's does; Beast's uses it for a body with a
// Content-Length) and hand over bytes from its own buffer instead.
using BodySpace = std::function<std::pair<char*, size_t>()>;

struct HttpRequest {
  std::string method = "GET";
  std::string target;       // path and query, already escaped, e.g. "/v2/x/manifests/y"
  Headers headers;
  std::string body;
  std::string content_type;
  // Token scope for the bearer flow, e.g. "repository:library/alpine:pull".
  std::string scope;
  // Optional: cancels the request (and its redirects) from another thread.
  std::shared_ptr<StreamCancel> cancel;
  // Optional, for Stream(): see BodySpace.
  BodySpace body_space;
};

struct HttpResponse {
  int status = 0;
  Headers headers;
  std::string body;
  // cpp-httplib 0.11 percent-decodes header values (see RepairDecodedLocation);
  // the streaming transport (Beast) keeps them as sent.
  bool headers_decoded = true;
};

// Called once with the final (post-auth, post-redirect) status and headers;
// return false to abandon the request.
using HeaderHandler = std::function<bool(int status, const Headers& headers)>;
// Called with each piece of a 2xx body; return false to abandon.
using DataHandler = std::function<bool(const char* data, size_t n)>;

class RegistryClient {
 public:
  RegistryClient(Url base, std::optional<Credentials> creds, ClientOptions opts);
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  // Sends `req`, reads a body of at most `max_body` bytes (longer: SIZE_INVALID).
  // Transport failures are UPSTREAM_UNAVAILABLE; any HTTP status is returned
  // as a value for the caller to interpret. Redirects are followed (8 at most,
  // never from https to http: UPSTREAM_INVALID). Tokens are cached per scope,
  // at most 512 (expired ones and then the soonest to expire are dropped).
  StatusOr<HttpResponse> Do(const HttpRequest& req, size_t max_body = 1 << 20);

  // Streams a GET: `on_headers` sees the final status and headers, then a 2xx
  // body goes to `on_data` piece by piece (a non-2xx body is kept, up to 64 KiB,
  // in the returned response's body). Returns the response without a 2xx body.
  StatusOr<HttpResponse> Stream(const HttpRequest& req, const HeaderHandler& on_headers,
                                const DataHandler& on_data);

  const Url& base() const { return base_; }

 private:
  struct Pool;
  StatusOr<HttpResponse> Execute(const HttpRequest& req, const HeaderHandler* on_headers,
                                 const DataHandler* on_data, size_t max_body);
  StatusOr<HttpResponse> Once(const Url& origin, const std::string& target, const HttpRequest& req,
                              const std::string& authorization, const HeaderHandler* on_headers,
                              const DataHandler* on_data, size_t max_body, bool* aborted);
  // A GET whose body is streamed: one hop over Beast (oci/stream_get.h).
  StatusOr<HttpResponse> OnceStreamed(const Url& origin, const std::string& target, const HttpRequest& req,
                                      const std::string& authorization, const HeaderHandler* on_headers,
                                      const DataHandler* on_data, bool* aborted);
  StatusOr<std::string> FetchToken(const std::string& challenge, const std::string& scope);
  std::string CachedAuthorization(const std::string& scope);
  Pool& PoolFor(const Url& origin);

  Url base_;
  std::optional<Credentials> creds_;
  ClientOptions opts_;

  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Pool>> pools_;  // by origin
  std::shared_ptr<internal::StreamTls> stream_tls_;      // made at the first streamed https hop
  struct Token {
    std::string value;
    std::chrono::steady_clock::time_point expires;
  };
  std::map<std::string, Token> tokens_;          // by realm|service|scope
  std::map<std::string, std::string> challenge_;  // last Bearer challenge by scope ("" = any)
  bool basic_preferred_ = false;
};

// Whether the upstream's Basic credentials may be sent to the token realm
// `realm` (review L3): over https, or to the upstream's own host when the
// upstream itself is plain http; never over plain http for an https upstream.
// Otherwise the token is asked for anonymously.
bool CredentialsMayGoTo(const Url& upstream, const Url& realm);

// Whether a redirect from `from` to `to` is followed: not from https to plain
// http (review L3), whatever the hosts.
bool RedirectAllowed(const Url& from, const Url& to);

// Percent-encodes a query value.
std::string QueryEscape(std::string_view s);

// cpp-httplib 0.11 percent-decodes every response header value, Location
// included, which breaks pre-signed storage URLs (a signature's "%2B" arrives
// as "+", which servers read as a space). This re-encodes the query of such a
// decoded URL: every key and value is percent-encoded except unreserved
// characters, which servers read back as the original bytes. The path is kept.
std::string RepairDecodedLocation(const std::string& location);

// A token service's answer ({"token": "...", "expires_in": N}).
struct TokenReply {
  std::string token;
  int expires_in = 60;  // seconds, clamped to [10, 86400]
};
// Tokens longer than this are refused (they travel in every request header).
inline constexpr size_t kMaxTokenBytes = 64 * 1024;
// Parses a token service's answer body; `realm` names the service in messages.
// UPSTREAM_INVALID when the body is not a JSON object, has no non-empty
// "token"/"access_token", holds one that is not a string, is over
// kMaxTokenBytes or holds control characters. Never throws.
StatusOr<TokenReply> ParseTokenReply(std::string_view body, const std::string& realm);

// Parses a WWW-Authenticate challenge: scheme and its key="value" parameters.
struct Challenge {
  std::string scheme;  // lowercased: "bearer" or "basic"
  std::map<std::string, std::string> params;
};
std::optional<Challenge> ParseChallenge(std::string_view header);

}  // namespace portcullis::oci
