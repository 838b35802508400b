#include "signer/upload_transport.h"

#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "oci/base64.h"

namespace portcullis::signer {

namespace {

constexpr size_t kReadBuffer = 1 << 20;
constexpr size_t kMaxResponseBody = 64 * 1024;

oci::HttpResponse FromHttplib(const httplib::Response& r) {
  oci::HttpResponse out;
  out.status = r.status;
  for (const auto& [k, v] : r.headers) out.headers.emplace(k, v);
  out.body = r.body.substr(0, kMaxResponseBody);
  return out;
}

}  // namespace

UploadTransport::UploadTransport(oci::Url base, std::optional<oci::Credentials> credentials, std::string scope,
                                 oci::ClientOptions options)
    : base_(std::move(base)),
      credentials_(std::move(credentials)),
      scope_(std::move(scope)),
      options_(std::move(options)) {}

UploadTransport::~UploadTransport() = default;

StatusOr<UploadTransport::Target> UploadTransport::Resolve(const std::string& url) const {
  if (url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0) {
    size_t slash = url.find('/', url.find("://") + 3);
    PC_ASSIGN_OR_RETURN(oci::Url origin, oci::ParseUrl(url.substr(0, slash)));
    return Target{origin, slash == std::string::npos ? std::string("/") : url.substr(slash)};
  }
  if (!url.empty() && url[0] == '/') return Target{base_, url};
  return Status::UpstreamInvalid("cannot resolve upload location \"" + url.substr(0, 200) + "\"");
}

httplib::Client& UploadTransport::ClientFor(const oci::Url& origin) {
  auto& c = clients_[origin.Origin()];
  if (!c) {
    c = std::make_unique<httplib::Client>(origin.Origin());
    c->set_connection_timeout(options_.connect_timeout);
    c->set_read_timeout(options_.read_timeout);
    c->set_write_timeout(options_.read_timeout);
    c->set_keep_alive(true);
    c->set_url_encode(false);
    c->set_decompress(false);
    if (origin.scheme == "https") {
      c->enable_server_certificate_verification(true);
      if (!options_.ca_file.empty()) c->set_ca_cert_path(options_.ca_file);
    }
  }
  return *c;
}

StatusOr<oci::HttpResponse> UploadTransport::Once(const Target& t, const std::string& method,
                                                  const oci::Headers& headers, const BodySource* body,
                                                  const std::string& authorization, const SentFn& on_sent) {
  httplib::Client& cli = ClientFor(t.origin);
  httplib::Headers h;
  for (const auto& [k, v] : headers) h.emplace(k, v);
  h.emplace("User-Agent", options_.user_agent);
  if (!authorization.empty()) h.emplace("Authorization", authorization);

  httplib::Result res{nullptr, httplib::Error::Unknown};
  bool read_error = false;
  int read_errno = 0;
  if (body == nullptr) {
    res = cli.Get(t.path, h);
  } else if (body->size() == 0) {
    if (method == "PUT") {
      res = cli.Put(t.path, h, std::string(), "application/octet-stream");
    } else {
      res = cli.Patch(t.path, h, std::string(), "application/octet-stream");
    }
  } else {
    std::vector<char> buf;
    httplib::ContentProvider provider = [&](size_t offset, size_t length, httplib::DataSink& sink) {
      if (body->fd < 0) {
        bool ok = sink.write(body->memory.data() + offset, length);
        if (ok && on_sent) on_sent(static_cast<int64_t>(offset + length));
        return ok;
      }
      if (buf.empty()) buf.resize(kReadBuffer);
      size_t want = std::min(length, buf.size());
      ssize_t n;
      do {
        n = ::pread(body->fd, buf.data(), want, static_cast<off_t>(body->offset + static_cast<int64_t>(offset)));
      } while (n < 0 && errno == EINTR);
      if (n <= 0) {
        read_error = true;
        read_errno = n < 0 ? errno : 0;
        return false;
      }
      bool ok = sink.write(buf.data(), static_cast<size_t>(n));
      if (ok && on_sent) on_sent(static_cast<int64_t>(offset) + n);
      return ok;
    };
    size_t len = static_cast<size_t>(body->size());
    if (method == "PUT") {
      res = cli.Put(t.path, h, len, provider, "application/octet-stream");
    } else {
      res = cli.Patch(t.path, h, len, provider, "application/octet-stream");
    }
  }
  if (read_error) {
    return Status::IoError(std::string("reading the blob to upload: ") +
                           (read_errno != 0 ? std::strerror(read_errno) : "file shorter than expected"));
  }
  if (!res) {
    return Status::UpstreamUnavailable(method + " " + t.origin.Origin() + t.path.substr(0, 200) + ": " +
                                       httplib::to_string(res.error()));
  }
  return FromHttplib(*res);
}

Status UploadTransport::Authorize(const oci::HttpResponse& r) {
  std::string www = oci::HeaderValue(r.headers, "WWW-Authenticate");
  auto ch = oci::ParseChallenge(www);
  if (!ch) return Status::Unauthorized("the registry refused the upload (HTTP 401) without a challenge");
  if (ch->scheme == "basic") {
    if (!credentials_) return Status::Unauthorized("the registry wants credentials for uploads (Basic auth)");
    authorization_ = "Basic " + oci::Base64Encode(credentials_->username + ":" + credentials_->password);
    return Status::Ok();
  }
  if (ch->scheme != "bearer" || ch->params["realm"].empty()) {
    return Status::Unauthorized("unsupported auth challenge \"" + www.substr(0, 200) + "\"");
  }
  const std::string realm = ch->params["realm"];
  auto q = realm.find('?');
  PC_ASSIGN_OR_RETURN(Target t, Resolve(realm.substr(0, q)));
  std::string query = q == std::string::npos ? "" : realm.substr(q + 1);
  auto add = [&](const std::string& k, const std::string& v) {
    if (!v.empty()) query += (query.empty() ? "" : "&") + k + "=" + oci::QueryEscape(v);
  };
  add("service", ch->params["service"]);
  add("scope", scope_);
  if (!query.empty()) t.path += "?" + query;
  std::string auth;
  // Credentials only to an https realm or this plain-http registry's own host (review L3).
  if (credentials_ && oci::CredentialsMayGoTo(base_, t.origin)) {
    auth = "Basic " + oci::Base64Encode(credentials_->username + ":" + credentials_->password);
  }
  PC_ASSIGN_OR_RETURN(oci::HttpResponse tr, Once(t, "GET", {}, nullptr, auth, nullptr));
  if (tr.status == 401 || tr.status == 403) {
    return Status::Unauthorized("token service " + realm + " refused the credentials (HTTP " +
                                std::to_string(tr.status) + ")");
  }
  if (tr.status != 200) {
    return Status::UpstreamUnavailable("token service " + realm + " answered HTTP " + std::to_string(tr.status));
  }
  PC_ASSIGN_OR_RETURN(oci::TokenReply reply, oci::ParseTokenReply(tr.body, realm));
  authorization_ = "Bearer " + reply.token;
  return Status::Ok();
}

StatusOr<oci::HttpResponse> UploadTransport::Send(const std::string& method, const std::string& url,
                                                  const oci::Headers& headers, const BodySource& body,
                                                  const SentFn& on_sent) {
  PC_ASSIGN_OR_RETURN(Target t, Resolve(url));
  const bool same_origin = t.origin.Origin() == base_.Origin();
  if (same_origin && !probed_) {
    // Learn the auth scheme with a cheap GET of the upload session (its status
    // endpoint) before streaming a possibly large body into a 401.
    probed_ = true;
    PC_ASSIGN_OR_RETURN(oci::HttpResponse probe, Once(t, "GET", {}, nullptr, authorization_, nullptr));
    if (probe.status == 401) PC_RETURN_IF_ERROR(Authorize(probe));
  }
  PC_ASSIGN_OR_RETURN(oci::HttpResponse r, Once(t, method, headers, &body, same_origin ? authorization_ : "", on_sent));
  if (r.status == 401 && same_origin) {
    // An expired token: renew once and send again (the body is re-read).
    PC_RETURN_IF_ERROR(Authorize(r));
    PC_ASSIGN_OR_RETURN(r, Once(t, method, headers, &body, authorization_, on_sent));
  }
  return r;
}

}  // namespace portcullis::signer
