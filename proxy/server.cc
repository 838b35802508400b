#include "proxy/server.h"

#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <optional>
#include <thread>

#include "oci/errors.h"
#include "oci/reference.h"
#include "proxy/handler_guard.h"
#include "proxy/listing.h"
#include "proxy/log.h"
#include "verifier/artifact_shape.h"

namespace portcullis::proxy {

namespace {

using SteadyClock = std::chrono::steady_clock;

// Per-request facts for the access log (a request is handled on one thread).
struct RequestInfo {
  SteadyClock::time_point start;
  bool counted = false;  // counted in active_ until the logger sees the response
  std::string route = "other";  // metrics label: base, manifest, blob, tags, referrers, other
  std::string cache;     // "hit", "miss" or ""
  std::string upstream;  // upstream name or ""
  std::string error;     // error code when one was sent
  std::string message;   // its message
};
thread_local RequestInfo t_info;

void SendError(httplib::Response& res, const Status& st) {
  const auto& info = oci::LookupError(st.code());
  res.status = info.http_status;
  t_info.error = std::string(info.wire_code);
  t_info.message = st.message();
  if (st.code() == Code::kTooManyRequests) res.set_header("Retry-After", "1");
  res.set_content(oci::ErrorJson(st), "application/json");
}

Status Unsupported(const std::string& method) {
  return Status::Unsupported("portcullis is a read-only pull-through proxy; " + method +
                             " is not supported (push to the upstream registry)");
}

enum class Kind { kManifest, kBlob, kTags, kReferrers, kUnknown };

struct Target {
  Kind kind = Kind::kUnknown;
  std::string name;  // as the client sent it (maybe with an upstream prefix)
  std::string ref;   // tag, digest, or empty
};

Target ParseTarget(const std::string& path) {
  Target t;
  std::string rest = path.substr(4);  // after "/v2/"
  const std::string tags_suffix = "/tags/list";
  if (rest.size() > tags_suffix.size() && rest.compare(rest.size() - tags_suffix.size(), tags_suffix.size(),
                                                        tags_suffix) == 0) {
    t.kind = Kind::kTags;
    t.name = rest.substr(0, rest.size() - tags_suffix.size());
    return t;
  }
  auto slash = rest.rfind('/');
  if (slash == std::string::npos) return t;
  std::string head = rest.substr(0, slash);
  t.ref = rest.substr(slash + 1);
  auto slash2 = head.rfind('/');
  if (slash2 == std::string::npos) return t;
  std::string op = head.substr(slash2 + 1);
  t.name = head.substr(0, slash2);
  if (op == "manifests") t.kind = Kind::kManifest;
  if (op == "blobs") t.kind = Kind::kBlob;
  if (op == "referrers") t.kind = Kind::kReferrers;
  return t;
}

void SendListing(Listing l, httplib::Response& res) {
  res.status = l.status;
  for (const auto& [k, v] : l.headers) res.set_header(k, v);
  res.set_content(std::move(l.body), l.content_type);
}

}  // namespace

HttpServer::HttpServer(const config::Config& cfg, Registry* registry) : cfg_(cfg), registry_(registry) {
  if (!cfg.tls_cert.empty()) {
    svr_ = std::make_unique<httplib::SSLServer>(cfg.tls_cert.c_str(), cfg.tls_key.c_str());
  } else {
    svr_ = std::make_unique<httplib::Server>();
  }
  Install();
}

HttpServer::~HttpServer() = default;

void HttpServer::Install() {
  const int threads = cfg_.threads;
  svr_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  svr_->set_keep_alive_max_count(100000);
  svr_->set_keep_alive_timeout(30);
  svr_->set_read_timeout(60);
  svr_->set_write_timeout(120);
  svr_->set_payload_max_length(64 << 20);  // writes are drained, never stored
  svr_->set_tcp_nodelay(true);
  // httplib's default adds SO_REUSEPORT, which lets a second `serve` on the same
  // port start silently and take half the connections: SO_REUSEADDR only.
  // It is called for the listening socket only: remember it for Serve().
  svr_->set_socket_options([this](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_fd_ = sock;
  });

  svr_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    // A response the logger never saw (its client went away) must not keep
    // the drain waiting: this thread's next request settles the count.
    if (t_info.counted) --active_;
    t_info = RequestInfo{};
    t_info.start = SteadyClock::now();
    res.set_header("Docker-Distribution-API-Version", "registry/2.0");
    if (draining_) {
      res.set_header("Connection", "close");
      SendError(res, Status::UpstreamUnavailable("portcullis is shutting down; retry on another mirror"));
      return httplib::Server::HandlerResponse::Handled;
    }
    ++active_;
    t_info.counted = true;
    // Methods that carry no body are refused here; writes below, once their
    // body has been drained so the connection stays in step.
    const bool write = req.method == "POST" || req.method == "PUT" || req.method == "PATCH" || req.method == "DELETE";
    const bool framed = req.has_header("Content-Length") || req.has_header("Transfer-Encoding");
    // A write without framing has no body httplib could drain: answer it here.
    if ((req.method != "GET" && req.method != "HEAD" && !write) || (write && !framed)) {
      SendError(res, Unsupported(req.method));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (write) return httplib::Server::HandlerResponse::Unhandled;
    HandleGet(req, res);
    return httplib::Server::HandlerResponse::Handled;
  });
  auto refuse_write = [](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& body) {
    body([](const char*, size_t) { return true; });  // drain, bounded by the payload limit
    SendError(res, Unsupported(req.method));
  };
  svr_->Post(".*", refuse_write);
  svr_->Put(".*", refuse_write);
  svr_->Patch(".*", refuse_write);
  svr_->Delete(".*", refuse_write);

  svr_->set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    AnswerException(req, res, ep);
    t_info.error = "INTERNAL";
    t_info.message = "exception in the request handler";
  });

  Metrics* metrics = &registry_->metrics();
  svr_->set_logger([this, metrics](const httplib::Request& req, const httplib::Response& res) {
    // Requests httplib refuses before routing never reached the pre-routing
    // handler: t_info then belongs to an earlier request and is not used.
    RequestInfo info = t_info;
    t_info = RequestInfo{};
    if (info.counted) --active_;
    int64_t bytes = static_cast<int64_t>(res.body.size());
    const std::string cl = res.get_header_value("Content-Length");
    if (!cl.empty() && cl.size() < 19 && cl.find_first_not_of("0123456789") == std::string::npos) bytes = std::stoll(cl);
    if (req.method == "HEAD") bytes = 0;
    const bool timed = info.start != SteadyClock::time_point{};
    const double seconds = timed ? std::chrono::duration<double>(SteadyClock::now() - info.start).count() : -1;
    metrics->RecordRequest(info.route, req.method, res.status, bytes, seconds);
    if (!LogEnabled(LogLevel::kInfo)) return;
    const long long b = bytes;
    const double ms = std::round(seconds * 1e6) / 1000;  // milliseconds, 3 decimals
    std::array<LogField, 12> f;
    size_t n = 0;
    f[n++] = {"method", req.method};
    f[n++] = {"path", req.path};
    f[n++] = {"status", res.status};
    f[n++] = {"bytes", b};
    f[n++] = {"client", req.remote_addr};
    if (timed) f[n++] = {"duration_ms", ms};
    if (!info.cache.empty()) f[n++] = {"cache", info.cache};
    if (!info.upstream.empty()) f[n++] = {"upstream", info.upstream};
    if (!info.error.empty()) {
      f[n++] = {"error", info.error};
      f[n++] = {"error_message", info.message};
    }
    LogFields(LogLevel::kInfo, "access", f.data(), n);
  });
}

void HttpServer::HandleGet(const httplib::Request& req, httplib::Response& res) {
  const bool head = req.method == "HEAD";
  const std::string& path = req.path;
  if (path == "/v2" || path == "/v2/") {
    t_info.route = "base";
    res.set_content("{}", "application/json");
    return;
  }
  if (path.rfind("/v2/", 0) != 0) {
    SendError(res, Status::NotFound("no such endpoint " + path.substr(0, 200) + "; this is an OCI registry API (/v2/)"));
    return;
  }
  Target t = ParseTarget(path);
  static const char* kRouteNames[] = {"manifest", "blob", "tags", "referrers", "other"};
  t_info.route = kRouteNames[static_cast<int>(t.kind)];
  if (t.kind == Kind::kUnknown) {
    SendError(res, Status::NotFound("no such endpoint " + path.substr(0, 200)));
    return;
  }
  const std::string ns = req.get_param_value("ns");
  auto route = registry_->Resolve(t.name, ns);
  if (!route.ok()) {
    SendError(res, route.status());
    return;
  }
  t_info.upstream = route->upstream->name;
  res.set_header("OCI-Namespace", route->upstream->name);

  switch (t.kind) {
    case Kind::kManifest: {
      if (t.ref.find(':') == std::string::npos) {
        // A tag-shaped reference that is not a valid tag names no manifest: 404,
        // as the distribution conformance suite expects (a malformed digest is 400).
        if (Status st = oci::ValidateTag(t.ref); !st.ok()) return SendError(res, Status::ManifestUnknown(st.message()));
      }
      auto m = registry_->GetManifest(*route, t.ref);
      if (!m.ok()) return SendError(res, m.status());
      const std::string tag = t.ref.find(':') == std::string::npos ? t.ref : "";
      if (Status st = registry_->gate().CheckManifest(*route, tag, m->digest, m->media_type, m->bytes, req.remote_addr);
          !st.ok()) {
        return SendError(res, st);
      }
      t_info.cache = m->cache_hit ? "hit" : "miss";
      res.set_header("Docker-Content-Digest", m->digest.ToString());
      res.set_header("Etag", "\"" + m->digest.ToString() + "\"");
      res.set_content(std::move(m->bytes), m->media_type);
      return;
    }
    case Kind::kBlob: {
      auto d = oci::Digest::Parse(t.ref);
      if (!d.ok()) return SendError(res, d.status());
      auto grant = registry_->gate().CheckBlob(*route, *d);
      if (!grant.ok()) {
        // A blob the upstream does not have is unknown (404), policy or not; one
        // that exists but passed no gate is refused (403).
        bool hit = false;
        auto size = registry_->StatBlob(*route, *d, &hit);
        if (!size.ok() && size.status().Is(Code::kBlobUnknown)) return SendError(res, size.status());
        return SendError(res, grant.status());
      }
      if (*grant == Gate::BlobGrant::kServeArtifactJson) return ServeArtifactBlob(*route, *d, head, res);
      res.set_header("Docker-Content-Digest", d->ToString());
      res.set_header("Accept-Ranges", "bytes");
      if (head) {
        bool hit = false;
        auto size = registry_->StatBlob(*route, *d, &hit);
        if (!size.ok()) return SendError(res, size.status());
        t_info.cache = hit ? "hit" : "miss";
        if (*size == 0) {
          res.set_content("", "application/octet-stream");
        } else if (*size > 0) {
          res.set_content_provider(static_cast<size_t>(*size), "application/octet-stream",
                                   [](size_t, size_t, httplib::DataSink&) { return false; });
        }
        return;
      }
      auto src = registry_->OpenBlob(*route, *d);
      if (!src.ok()) return SendError(res, src.status());
      t_info.cache = src->cache_hit ? "hit" : "miss";
      // httplib 0.11 does not check ranges against the length: a range that
      // starts at or past the end is unsatisfiable (416), as RFC 9110 says.
      for (const auto& [first, last] : req.ranges) {
        bool bad = src->size >= 0 && first >= 0 && first >= src->size;
        if (src->size >= 0 && first < 0 && last == 0) bad = true;  // "bytes=-0"
        if (bad) {
          res.set_header("Content-Range", "bytes */" + std::to_string(src->size));
          return SendError(res, Status::RangeInvalid("range starts past the end of the " +
                                                     std::to_string(src->size) + "-byte blob"));
        }
      }
      if (!req.ranges.empty() && src->size < 0) {
        return SendError(res, Status::RangeInvalid("the blob's length is not known yet; retry without Range"));
      }
      ServeBlob(*src, res);
      return;
    }
    case Kind::kTags: {
      auto opt = [&](const char* p) -> std::optional<std::string> {
        if (!req.has_param(p)) return std::nullopt;
        return req.get_param_value(p);
      };
      auto q = ParseTagsQuery(opt("n"), opt("last"));
      if (!q.ok()) return SendError(res, q.status());
      auto l = ListTags(*registry_, *route, t.name, ns, *q);
      if (!l.ok()) return SendError(res, l.status());
      return SendListing(std::move(*l), res);
    }
    case Kind::kReferrers: {
      auto d = oci::Digest::Parse(t.ref);
      if (!d.ok()) return SendError(res, d.status());
      std::optional<std::string> at;
      if (req.has_param("artifactType")) at = req.get_param_value("artifactType");
      auto l = ListReferrers(*registry_, *route, *d, at);
      if (!l.ok()) return SendError(res, l.status());
      return SendListing(std::move(*l), res);
    }
    case Kind::kUnknown:
      break;
  }
}

StatusOr<std::string> HttpServer::ReadSmallBlob(const BlobSource& src, size_t max) {
  if (src.size > static_cast<int64_t>(max)) return Status::Denied("blob is larger than " + std::to_string(max));
  std::string out;
  if (!src.fetch) {
    Store& store = registry_->store();
    for (uint64_t i = 0; out.size() < static_cast<uint64_t>(src.size); ++i) {
      rocksdb::PinnableSlice chunk;
      PC_RETURN_IF_ERROR(store.ReadChunk(src.digest, i, &chunk));
      if (chunk.size() == 0) return Status::IoError("cached blob " + src.digest.ToString() + " is missing a chunk");
      out.append(chunk.data(), chunk.size());
    }
    if (out.size() != static_cast<uint64_t>(src.size)) {
      return Status::IoError("cached blob " + src.digest.ToString() + " has the wrong size");
    }
    return out;
  }
  // Only what matched the digest: read until the fetch reports the verified end.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(cfg_.upstream_timeout_seconds);
  while (true) {
    switch (src.fetch->Read(out.size(), 1 << 16, UINT64_MAX, &out, std::chrono::milliseconds(500))) {
      case BlobFetch::ReadResult::kData:
        if (out.size() > max) return Status::Denied("blob is larger than " + std::to_string(max));
        break;
      case BlobFetch::ReadResult::kEnd:
        return out;
      case BlobFetch::ReadResult::kFailed:
        return Status::UpstreamUnavailable("upstream fetch of " + src.digest.ToString() + " failed");
      case BlobFetch::ReadResult::kTimeout:
        if (std::chrono::steady_clock::now() > deadline) {
          return Status::UpstreamUnavailable("upstream fetch of " + src.digest.ToString() + " stalled");
        }
        break;
    }
  }
}

void HttpServer::ServeArtifactBlob(const Route& route, const oci::Digest& d, bool head, httplib::Response& res) {
  const auto refuse = [&](const std::string& why) {
    SendError(res, Status::Denied("blob " + d.ToString() + " is named only by a signature artifact in " + route.Key() +
                                  " and " + why));
  };
  const size_t max = static_cast<size_t>(verifier::kMaxArtifactBlobBytes);
  if (head) {
    bool hit = false;
    auto size = registry_->StatBlob(route, d, &hit);
    if (!size.ok()) return SendError(res, size.status());
    if (*size < 0 || *size > static_cast<int64_t>(max)) return refuse("is not a small JSON document");
    t_info.cache = hit ? "hit" : "miss";
    res.set_header("Docker-Content-Digest", d.ToString());
    res.set_content_provider(static_cast<size_t>(*size), "application/octet-stream",
                             [](size_t, size_t, httplib::DataSink&) { return false; });
    return;
  }
  auto src = registry_->OpenBlob(route, d);
  if (!src.ok()) return SendError(res, src.status());
  t_info.cache = src->cache_hit ? "hit" : "miss";
  auto bytes = ReadSmallBlob(*src, max);
  if (!bytes.ok()) {
    if (bytes.status().Is(Code::kDenied)) return refuse("is not a small JSON document");
    return SendError(res, bytes.status());
  }
  // Signature payloads, envelopes, bundles and configs are JSON; a file-system
  // layer never is: it is not served through this path whatever names it.
  if (!verifier::IsArtifactBlob(*bytes)) return refuse("is not a small JSON document");
  res.set_header("Docker-Content-Digest", d.ToString());
  res.set_content(std::move(*bytes), "application/octet-stream");
}

void HttpServer::ServeBlob(const BlobSource& src, httplib::Response& res) {
  const char* kType = "application/octet-stream";
  if (src.size == 0) {
    // httplib sends no Content-Length for a zero-length provider. An empty blob's
    // bytes are known; wait for the fetch only to learn whether it committed.
    if (src.fetch) {
      std::string unused;
      if (src.fetch->Read(0, 1, 0, &unused, std::chrono::seconds(cfg_.upstream_timeout_seconds)) !=
          BlobFetch::ReadResult::kEnd) {
        SendError(res, Status::UpstreamUnavailable("upstream fetch of " + src.digest.ToString() + " failed"));
        return;
      }
    }
    res.set_content("", kType);
    return;
  }
  // Pinned for as long as the response is written: eviction skips the blob.
  Store* store = &registry_->store();
  store->Pin(src.digest);
  oci::Digest pinned = src.digest;
  auto unpin = [store, pinned](bool) { store->Unpin(pinned); };
  if (!src.fetch) {
    oci::Digest d = src.digest;
    uint64_t cb = src.chunk_bytes;
    res.set_content_provider(static_cast<size_t>(src.size), kType,
                             [store, d, cb](size_t offset, size_t length, httplib::DataSink& sink) {
                               rocksdb::PinnableSlice chunk;
                               uint64_t in = offset % cb;
                               Status st = store->ReadChunk(d, offset / cb, &chunk);
                               if (!st.ok() || chunk.size() <= in) {
                                 Log(LogLevel::kError, "cached blob is missing a chunk; connection cut",
                                     {{"digest", d.ToString()}, {"offset", offset}, {"error", st.ToString()}});
                                 return false;
                               }
                               size_t n = std::min<size_t>(chunk.size() - in, length);
                               return sink.write(chunk.data() + in, n);
                             },
                             unpin);
    return;
  }
  // A running fetch: stream what has arrived, withholding the last byte until
  // the digest is confirmed. Returning false cuts the connection mid-body.
  std::shared_ptr<BlobFetch> fetch = src.fetch;
  const auto stall = std::chrono::seconds(cfg_.upstream_timeout_seconds);
  auto pump = [fetch, stall](size_t offset, uint64_t hold_at, httplib::DataSink& sink, bool* end) {
    std::string buf;
    auto deadline = SteadyClock::now() + stall;
    while (true) {
      switch (fetch->Read(offset, 1 << 20, hold_at, &buf, std::chrono::milliseconds(500))) {
        case BlobFetch::ReadResult::kData:
          return sink.write(buf.data(), buf.size());
        case BlobFetch::ReadResult::kEnd:
          *end = true;
          return true;
        case BlobFetch::ReadResult::kFailed:
          return false;
        case BlobFetch::ReadResult::kTimeout:
          // The client may be gone; the fetch goes on for the others either way.
          if (!sink.is_writable() || SteadyClock::now() > deadline) return false;
          break;
      }
    }
  };
  if (src.size >= 0) {
    res.set_content_provider(static_cast<size_t>(src.size), kType,
                             [pump](size_t offset, size_t length, httplib::DataSink& sink) {
                               bool end = false;
                               bool ok = pump(offset, offset + length - 1, sink, &end);
                               return ok && !end;
                             },
                             unpin);
  } else {
    res.set_chunked_content_provider(kType, [pump](size_t offset, httplib::DataSink& sink) {
      bool end = false;
      if (!pump(offset, UINT64_MAX, sink, &end)) return false;
      if (end) sink.done();
      return true;
    }, unpin);
  }
}

Status HttpServer::Bind() {
  if (!svr_->is_valid()) {
    return Status::InvalidArgument("cannot load the TLS certificate " + cfg_.tls_cert + " and key " + cfg_.tls_key +
                                   " (PEM files, the key matching the certificate)");
  }
  auto colon = cfg_.listen.rfind(':');
  std::string host = cfg_.listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = std::stoi(cfg_.listen.substr(colon + 1));
  if (port == 0) {
    port_ = svr_->bind_to_any_port(host);
    if (port_ < 0) return Status::IoError("cannot listen on " + cfg_.listen);
  } else {
    if (!svr_->bind_to_port(host, port)) {
      return Status::IoError("cannot listen on " + cfg_.listen + " (address in use or not permitted)");
    }
    port_ = port;
  }
  return Status::Ok();
}

void HttpServer::Serve() {
  // cpp-httplib 0.11 listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, fixed
  // when Debian built the library): under a burst of new connections the kernel
  // drops SYNs and clients wait a second for the retry. Linux lets listen() be
  // called again on a listening socket to raise it.
  if (listen_fd_ >= 0) (void)::listen(listen_fd_, SOMAXCONN);
  svr_->listen_after_bind();
}

void HttpServer::Stop() { svr_->stop(); }

bool HttpServer::Drain(std::chrono::steady_clock::time_point deadline) {
  draining_ = true;
  // httplib's stop() ends transfers in progress: wait for them first.
  while (active_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  bool drained = active_.load() <= 0;
  svr_->stop();
  return drained;
}

}  // namespace portcullis::proxy
