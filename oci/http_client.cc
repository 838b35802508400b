#include "oci/http_client.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "oci/base64.h"
#include "oci/json_fields.h"
#include "oci/stream_get.h"

namespace portcullis::oci {

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// Resolves a Location header against the URL it came from; `decoded`: the
// value arrived percent-decoded (cpp-httplib) and its query needs repair.
StatusOr<std::pair<Url, std::string>> ResolveLocation(const Url& from, const std::string& raw_location,
                                                      bool decoded = true) {
  const std::string location = decoded ? RepairDecodedLocation(raw_location) : raw_location;
  if (location.rfind("http://", 0) == 0 || location.rfind("https://", 0) == 0) {
    auto scheme_end = location.find("://") + 3;
    auto slash = location.find('/', scheme_end);
    PC_ASSIGN_OR_RETURN(Url u, ParseUrl(location.substr(0, slash)));
    return std::make_pair(u, slash == std::string::npos ? std::string("/") : location.substr(slash));
  }
  if (!location.empty() && location[0] == '/') return std::make_pair(from, location);
  return Status::UpstreamInvalid("unsupported redirect Location \"" + location.substr(0, 200) + "\"");
}

// httplib's error names, as sentences an operator can act on.
std::string Describe(httplib::Error e) {
  switch (e) {
    case httplib::Error::Connection: return "cannot connect (refused, unreachable or name not resolved)";
    case httplib::Error::ConnectionTimeout: return "timed out connecting";
    case httplib::Error::Read: return "the connection failed or timed out while reading the answer";
    case httplib::Error::Write: return "the connection failed while sending the request";
    case httplib::Error::SSLConnection: return "TLS handshake failed";
    case httplib::Error::SSLLoadingCerts: return "cannot load the CA bundle (check --upstream-ca)";
    case httplib::Error::SSLServerVerification:
      return "TLS certificate verification failed: unknown CA or wrong host name (see --upstream-ca)";
    default: return httplib::to_string(e);
  }
}

// Bounds of the per-client caches (review L4): any client can name new
// repositories, and each name would otherwise add an entry for good.
constexpr size_t kMaxCachedTokens = 512;
constexpr size_t kMaxCachedChallenges = 4096;

}  // namespace

StatusOr<TokenReply> ParseTokenReply(std::string_view body, const std::string& realm) {
  const std::string who = "token service " + realm.substr(0, 200);
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded()) return Status::UpstreamInvalid(who + " answered something that is not JSON");
  if (!j.is_object()) return Status::UpstreamInvalid(who + " answered " + JsonTypeName(j) + ", not a JSON object");
  TokenReply out;
  // "token" wins; "access_token" is the OAuth2 name some services use instead.
  for (const char* name : {"token", "access_token"}) {
    const nlohmann::json* v = FindField(j, name);
    if (v == nullptr || (v->is_string() && v->get_ref<const std::string&>().empty())) continue;
    if (!v->is_string()) {
      return Status::UpstreamInvalid(who + " answered a " + name + " that is not a string (" + JsonTypeName(*v) + ")");
    }
    out.token = v->get<std::string>();
    break;
  }
  if (out.token.empty()) return Status::UpstreamInvalid(who + " sent no token");
  if (out.token.size() > kMaxTokenBytes) {
    return Status::UpstreamInvalid(who + " answered a token of " + std::to_string(out.token.size()) +
                                   " bytes, over the " + std::to_string(kMaxTokenBytes) + "-byte limit");
  }
  // Tokens go into a header: control characters there would split it.
  for (unsigned char c : out.token) {
    if (c < 0x20 || c == 0x7f) return Status::UpstreamInvalid(who + " answered a token with control characters");
  }
  if (auto e = IntField(j, "expires_in")) out.expires_in = static_cast<int>(std::clamp<int64_t>(*e, 10, 24 * 3600));
  return out;
}

bool RedirectAllowed(const Url& from, const Url& to) { return from.scheme != "https" || to.scheme == "https"; }

bool CredentialsMayGoTo(const Url& upstream, const Url& realm) {
  if (upstream.scheme == "https" && realm.scheme != "https") return false;  // never downgraded to plain http
  return realm.scheme == "https" || Lower(realm.host) == Lower(upstream.host);
}

std::string Url::Origin() const { return scheme + "://" + host + ":" + std::to_string(port); }

StatusOr<Url> ParseUrl(std::string_view s) {
  Url u;
  std::string_view rest;
  if (s.rfind("http://", 0) == 0) {
    u.scheme = "http";
    rest = s.substr(7);
  } else if (s.rfind("https://", 0) == 0) {
    u.scheme = "https";
    rest = s.substr(8);
  } else {
    return Status::InvalidArgument("URL \"" + std::string(s) + "\" must start with http:// or https://");
  }
  auto slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    u.path = std::string(rest.substr(slash));
    while (!u.path.empty() && u.path.back() == '/') u.path.pop_back();
  }
  if (hostport.empty()) return Status::InvalidArgument("URL \"" + std::string(s) + "\" has no host");
  auto colon = hostport.rfind(':');
  auto bracket = hostport.find(']');
  // "[::1]:5000": the port colon comes after the bracket; "[::1]" has none.
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    std::string port(hostport.substr(colon + 1));
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit)) {
      return Status::InvalidArgument("URL \"" + std::string(s) + "\" has a bad port");
    }
    u.port = std::stoi(port);
    if (u.port <= 0 || u.port > 65535) return Status::InvalidArgument("URL \"" + std::string(s) + "\" has a bad port");
    u.host = std::string(hostport.substr(0, colon));
  } else {
    u.host = std::string(hostport);
    u.port = u.scheme == "https" ? 443 : 80;
  }
  if (u.host.empty()) return Status::InvalidArgument("URL \"" + std::string(s) + "\" has no host");
  return u;
}

bool CaseLess::operator()(const std::string& a, const std::string& b) const {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](unsigned char x, unsigned char y) {
    return std::tolower(x) < std::tolower(y);
  });
}

std::string HeaderValue(const Headers& h, const std::string& name) {
  auto it = h.find(name);
  return it == h.end() ? std::string() : it->second;
}

std::string QueryEscape(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string RepairDecodedLocation(const std::string& location) {
  auto q = location.find('?');
  if (q == std::string::npos) return location;
  std::string out = location.substr(0, q + 1);
  std::string_view query = std::string_view(location).substr(q + 1);
  size_t start = 0;
  bool first = true;
  while (start <= query.size()) {
    size_t amp = query.find('&', start);
    std::string_view pair = query.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
    if (!first) out += '&';
    first = false;
    auto eq = pair.find('=');
    if (eq == std::string_view::npos) {
      out += QueryEscape(pair);
    } else {
      out += QueryEscape(pair.substr(0, eq)) + "=" + QueryEscape(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  return out;
}

std::optional<Challenge> ParseChallenge(std::string_view h) {
  size_t i = 0;
  while (i < h.size() && h[i] == ' ') ++i;
  size_t start = i;
  while (i < h.size() && h[i] != ' ') ++i;
  if (i == start) return std::nullopt;
  Challenge c;
  c.scheme = Lower(h.substr(start, i - start));
  while (i < h.size()) {
    while (i < h.size() && (h[i] == ' ' || h[i] == ',')) ++i;
    size_t ks = i;
    while (i < h.size() && h[i] != '=') ++i;
    if (i >= h.size()) break;
    std::string key = Lower(h.substr(ks, i - ks));
    ++i;
    std::string val;
    if (i < h.size() && h[i] == '"') {
      ++i;
      while (i < h.size() && h[i] != '"') {
        if (h[i] == '\\' && i + 1 < h.size()) ++i;
        val += h[i++];
      }
      ++i;
    } else {
      while (i < h.size() && h[i] != ',') val += h[i++];
    }
    c.params[key] = val;
  }
  return c;
}

// A bounded set of idle keep-alive connections to one origin.
struct RegistryClient::Pool {
  std::mutex mu;
  std::vector<std::unique_ptr<httplib::Client>> idle;
  std::vector<internal::StreamConnectionPtr> stream_idle;  // for streamed GETs
};

RegistryClient::RegistryClient(Url base, std::optional<Credentials> creds, ClientOptions opts)
    : base_(std::move(base)), creds_(std::move(creds)), opts_(std::move(opts)) {}

RegistryClient::~RegistryClient() = default;

RegistryClient::Pool& RegistryClient::PoolFor(const Url& origin) {
  std::lock_guard<std::mutex> l(mu_);
  auto& p = pools_[origin.Origin()];
  if (!p) p = std::make_unique<Pool>();
  return *p;
}

StatusOr<HttpResponse> RegistryClient::Once(const Url& origin, const std::string& target, const HttpRequest& req,
                                            const std::string& authorization, const HeaderHandler* on_headers,
                                            const DataHandler* on_data, size_t max_body, bool* aborted) {
  if (on_data != nullptr && req.method == "GET") {
    return OnceStreamed(origin, target, req, authorization, on_headers, on_data, aborted);
  }
  Pool& pool = PoolFor(origin);
  std::unique_ptr<httplib::Client> cli;
  {
    std::lock_guard<std::mutex> l(pool.mu);
    if (!pool.idle.empty()) {
      cli = std::move(pool.idle.back());
      pool.idle.pop_back();
    }
  }
  if (!cli) {
    cli = std::make_unique<httplib::Client>(origin.Origin());
    cli->set_connection_timeout(opts_.connect_timeout);
    cli->set_read_timeout(opts_.read_timeout);
    cli->set_write_timeout(opts_.read_timeout);
    cli->set_keep_alive(true);
    cli->set_url_encode(false);
    cli->set_decompress(false);
    if (origin.scheme == "https") {
      cli->enable_server_certificate_verification(true);
      if (!opts_.ca_file.empty()) cli->set_ca_cert_path(opts_.ca_file);
    }
  }

  httplib::Request hreq;
  hreq.method = req.method;
  hreq.path = target;
  for (const auto& [k, v] : req.headers) hreq.headers.emplace(k, v);
  hreq.headers.emplace("User-Agent", opts_.user_agent);
  if (!authorization.empty()) hreq.headers.emplace("Authorization", authorization);
  if (!req.body.empty() || req.method == "PUT" || req.method == "POST" || req.method == "PATCH") {
    hreq.body = req.body;
    hreq.headers.emplace("Content-Type", req.content_type.empty() ? "application/octet-stream" : req.content_type);
  }

  HttpResponse out;
  bool stream_body = false;
  bool too_big = false;
  *aborted = false;
  hreq.response_handler = [&](const httplib::Response& r) {
    out.status = r.status;
    for (const auto& [k, v] : r.headers) out.headers.emplace(k, v);
    // Auth challenges and redirects are handled by the caller; their bodies are not needed.
    if (r.status == 401 || internal::IsRedirectStatus(r.status)) return true;
    stream_body = on_data != nullptr && r.status >= 200 && r.status < 300;
    if (on_headers != nullptr && !(*on_headers)(r.status, out.headers)) {
      *aborted = true;
      return false;
    }
    return true;
  };
  // A HEAD answer has no body, whatever its Content-Length says; httplib would
  // wait for one if a receiver were set.
  if (req.method != "HEAD") hreq.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (stream_body) {
      if (!(*on_data)(data, n)) {
        *aborted = true;
        return false;
      }
      return true;
    }
    size_t cap = on_data != nullptr ? size_t(64 * 1024) : max_body;
    if (out.body.size() + n > cap) {
      too_big = true;
      return false;
    }
    out.body.append(data, n);
    return true;
  };

  httplib::Response hres;
  httplib::Error err = httplib::Error::Success;
  // httplib's stop() only shuts the socket down while a request is in flight
  // (the one thread-safe thing to do); the sending thread then fails its read.
  httplib::Client* raw = cli.get();
  if (req.cancel && !req.cancel->AttachAbort(raw, [raw] { raw->stop(); })) {
    return Status::UpstreamUnavailable(req.method + " " + origin.Origin() + target + ": cancelled");
  }
  bool ok = cli->send(hreq, hres, err);
  if (req.cancel) {
    req.cancel->DetachAbort(raw);
    // A cancelled request's connection was shut down: never reused, never a success.
    if (req.cancel->cancelled()) {
      return Status::UpstreamUnavailable(req.method + " " + origin.Origin() + target + ": cancelled");
    }
  }
  if (ok && out.status == 0) {
    // httplib calls the response handler only for answers with a body (not HEAD).
    out.status = hres.status;
    for (const auto& [k, v] : hres.headers) out.headers.emplace(k, v);
    if (on_headers != nullptr && hres.status != 401 && !internal::IsRedirectStatus(hres.status)) {
      (*on_headers)(hres.status, out.headers);
    }
  }
  if (ok) {
    std::string conn = hres.get_header_value("Connection");
    std::lock_guard<std::mutex> l(pool.mu);
    if (Lower(conn) != "close" && pool.idle.size() < opts_.max_idle_connections) pool.idle.push_back(std::move(cli));
    return out;
  }
  if (too_big) {
    return Status::SizeInvalid(req.method + " " + origin.Origin() + target + ": body is over " +
                               std::to_string(max_body) + " bytes");
  }
  if (*aborted) return out;  // the caller chose to stop; the connection is dropped
  return Status::UpstreamUnavailable(req.method + " " + origin.Origin() + target + ": " + Describe(err));
}

StatusOr<HttpResponse> RegistryClient::OnceStreamed(const Url& origin, const std::string& target,
                                                    const HttpRequest& req, const std::string& authorization,
                                                    const HeaderHandler* on_headers, const DataHandler* on_data,
                                                    bool* aborted) {
  internal::StreamTls* tls = nullptr;
  if (origin.scheme == "https") {
    std::lock_guard<std::mutex> l(mu_);
    if (!stream_tls_) {
      PC_ASSIGN_OR_RETURN(stream_tls_, internal::MakeStreamTls(opts_.ca_file));
    }
    tls = stream_tls_.get();
  }
  internal::StreamHop hop;
  hop.origin = origin;
  hop.target = target;
  for (const auto& [k, v] : req.headers) hop.headers.emplace_back(k, v);
  hop.headers.emplace_back("User-Agent", opts_.user_agent);
  if (!authorization.empty()) hop.headers.emplace_back("Authorization", authorization);
  hop.cancel = req.cancel.get();
  hop.on_headers = on_headers;
  hop.on_data = on_data;
  if (req.body_space) hop.body_space = &req.body_space;
  Pool& pool = PoolFor(origin);
  internal::StreamConnectionPtr conn;
  {
    std::lock_guard<std::mutex> l(pool.mu);
    if (!pool.stream_idle.empty()) {
      conn = std::move(pool.stream_idle.back());
      pool.stream_idle.pop_back();
    }
  }
  auto r = internal::StreamGet(conn, hop, opts_, tls, aborted);
  if (conn) {
    std::lock_guard<std::mutex> l(pool.mu);
    if (pool.stream_idle.size() < opts_.max_idle_connections) pool.stream_idle.push_back(std::move(conn));
  }
  return r;
}

std::string RegistryClient::CachedAuthorization(const std::string& scope) {
  std::lock_guard<std::mutex> l(mu_);
  auto ch = challenge_.find(scope);
  if (ch == challenge_.end()) ch = challenge_.find("");
  if (ch != challenge_.end()) {
    auto tok = tokens_.find(ch->second + "|" + scope);
    if (tok != tokens_.end() && tok->second.expires > std::chrono::steady_clock::now()) {
      return "Bearer " + tok->second.value;
    }
  }
  if (basic_preferred_ && creds_) return "Basic " + Base64Encode(creds_->username + ":" + creds_->password);
  return "";
}

StatusOr<std::string> RegistryClient::FetchToken(const std::string& challenge_header, const std::string& scope) {
  auto ch = ParseChallenge(challenge_header);
  if (!ch || ch->params["realm"].empty()) {
    return Status::UpstreamInvalid("upstream sent a Bearer challenge without a realm");
  }
  const std::string realm = ch->params["realm"];
  const std::string service = ch->params["service"];
  std::string want_scope = scope.empty() ? ch->params["scope"] : scope;
  // Cached under the request's scope, which is what CachedAuthorization looks up.
  std::string key = realm + "|" + service + "|" + scope;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (challenge_.size() >= kMaxCachedChallenges && challenge_.count(scope) == 0) challenge_.erase(challenge_.begin());
    challenge_[scope] = realm + "|" + service;
    auto tok = tokens_.find(key);
    if (tok != tokens_.end() && tok->second.expires > std::chrono::steady_clock::now()) return tok->second.value;
  }
  auto qpos = realm.find('?');
  PC_ASSIGN_OR_RETURN(auto loc, ResolveLocation(base_, realm.substr(0, qpos)));
  std::string target = loc.second;
  std::string query = qpos == std::string::npos ? "" : realm.substr(qpos + 1);
  auto add = [&](const std::string& k, const std::string& v) {
    if (v.empty()) return;
    query += (query.empty() ? "" : "&") + k + "=" + QueryEscape(v);
  };
  add("service", service);
  add("scope", want_scope);
  if (!query.empty()) target += "?" + query;
  HttpRequest treq;
  treq.target = target;
  std::string auth;
  if (creds_ && CredentialsMayGoTo(base_, loc.first)) {
    auth = "Basic " + Base64Encode(creds_->username + ":" + creds_->password);
  }
  bool aborted = false;
  PC_ASSIGN_OR_RETURN(HttpResponse r, Once(loc.first, target, treq, auth, nullptr, nullptr, 1 << 20, &aborted));
  if (r.status == 401 || r.status == 403) {
    return Status::Unauthorized("token service " + realm + " refused the credentials (HTTP " +
                                std::to_string(r.status) + ")");
  }
  if (r.status != 200) {
    return Status::UpstreamUnavailable("token service " + realm + " answered HTTP " + std::to_string(r.status));
  }
  PC_ASSIGN_OR_RETURN(TokenReply reply, ParseTokenReply(r.body, realm));
  std::lock_guard<std::mutex> l(mu_);
  if (tokens_.size() >= kMaxCachedTokens && tokens_.count(key) == 0) {
    // Full: drop the expired ones, and if that frees nothing the one that expires first.
    const auto now = std::chrono::steady_clock::now();
    std::erase_if(tokens_, [&](const auto& kv) { return kv.second.expires <= now; });
    if (tokens_.size() >= kMaxCachedTokens) {
      tokens_.erase(std::min_element(tokens_.begin(), tokens_.end(), [](const auto& a, const auto& b) {
        return a.second.expires < b.second.expires;
      }));
    }
  }
  // Renew a little early so a token never expires between check and use.
  tokens_[key] = Token{reply.token, std::chrono::steady_clock::now() + std::chrono::seconds(reply.expires_in - 5)};
  return reply.token;
}

StatusOr<HttpResponse> RegistryClient::Execute(const HttpRequest& req, const HeaderHandler* on_headers,
                                               const DataHandler* on_data, size_t max_body) {
  Url origin = base_;
  std::string target = base_.path + req.target;
  std::string auth = CachedAuthorization(req.scope);
  bool same_origin = true;
  bool auth_retried = false;
  for (int hop = 0; hop < 8; ++hop) {
    bool aborted = false;
    PC_ASSIGN_OR_RETURN(HttpResponse r,
                        Once(origin, target, req, same_origin ? auth : "", on_headers, on_data, max_body, &aborted));
    if (aborted) return r;
    if (r.status == 401 && same_origin && !auth_retried) {
      auth_retried = true;
      std::string www = HeaderValue(r.headers, "WWW-Authenticate");
      auto ch = ParseChallenge(www);
      if (ch && ch->scheme == "bearer") {
        PC_ASSIGN_OR_RETURN(std::string token, FetchToken(www, req.scope));
        auth = "Bearer " + token;
        continue;
      }
      if (ch && ch->scheme == "basic" && creds_) {
        {
          std::lock_guard<std::mutex> l(mu_);
          basic_preferred_ = true;
        }
        auth = "Basic " + Base64Encode(creds_->username + ":" + creds_->password);
        continue;
      }
      return r;
    }
    if (internal::IsRedirectStatus(r.status)) {
      std::string location = HeaderValue(r.headers, "Location");
      PC_ASSIGN_OR_RETURN(auto next, ResolveLocation(origin, location, r.headers_decoded));
      if (!RedirectAllowed(origin, next.first)) {
        return Status::UpstreamInvalid("upstream redirected " + req.target.substr(0, 200) +
                                       " from https to plain http; refused");
      }
      // Credentials never follow a redirect to another origin (blob storage URLs are pre-signed).
      if (next.first.Origin() != origin.Origin()) same_origin = false;
      origin = next.first;
      target = next.second;
      continue;
    }
    if (on_headers != nullptr && (r.status == 401 || internal::IsRedirectStatus(r.status))) {
      // Give the caller the final status when the flow ends on one of these.
      (*on_headers)(r.status, r.headers);
    }
    return r;
  }
  return Status::UpstreamInvalid("too many redirects for " + req.target);
}

void StreamCancel::Cancel() {
  std::lock_guard<std::mutex> l(mu_);
  cancelled_ = true;
  for (auto& [key, abort] : aborts_) abort();
}

bool StreamCancel::cancelled() const {
  std::lock_guard<std::mutex> l(mu_);
  return cancelled_;
}

bool StreamCancel::AttachAbort(const void* key, std::function<void()> abort) {
  std::lock_guard<std::mutex> l(mu_);
  if (cancelled_) return false;
  aborts_.emplace_back(key, std::move(abort));
  return true;
}

void StreamCancel::DetachAbort(const void* key) {
  std::lock_guard<std::mutex> l(mu_);
  std::erase_if(aborts_, [key](const auto& a) { return a.first == key; });
}

StatusOr<HttpResponse> RegistryClient::Do(const HttpRequest& req, size_t max_body) {
  return Execute(req, nullptr, nullptr, max_body);
}

StatusOr<HttpResponse> RegistryClient::Stream(const HttpRequest& req, const HeaderHandler& on_headers,
                                              const DataHandler& on_data) {
  return Execute(req, &on_headers, &on_data, 0);
}

}  // namespace portcullis::oci
