#include "proxy/server.h"

#include <array>
#include <cmath>
#include <optional>
#include <thread>

#include "oci/errors.h"
#include "oci/reference.h"
#include "proxy/blob_body.h"
#include "proxy/host_check.h"
#include "proxy/listing.h"
#include "proxy/log.h"
#include "verifier/artifact_shape.h"

namespace portcullis::proxy {

namespace {

Status Unsupported(const std::string& method) {
  return Status::Unsupported("portcullis is a read-only pull-through proxy; " + method.substr(0, 32) +
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

void AddListing(Listing l, HttpResponse& res) {
  res.status = l.status;
  for (auto& [k, v] : l.headers) res.SetHeader(k, v);
  res.SetContent(std::move(l.body), l.content_type);
}

// The request handlers of one registry request: the registry, its config and
// the response being built.
class RegistryRequest {
 public:
  // `in_memory`: answer only what needs no disk read and no upstream (see
  // TryRegistryRequestInMemory); fell_back() then says the rest was not answered.
  RegistryRequest(Registry& registry, const config::Config& cfg, const HttpRequest& req, bool in_memory = false)
      : registry_(registry), cfg_(cfg), req_(req), in_memory_(in_memory) {}

  HttpResponse Handle();
  bool fell_back() const { return fell_back_; }

 private:
  void Manifest(const Route& route, const std::string& ref);
  void Blob(const Route& route, const std::string& ref);
  void ArtifactBlob(const Route& route, const oci::Digest& d);
  // The whole blob, verified against its digest, when at most `max` bytes
  // (DENIED when larger).
  StatusOr<std::string> ReadSmallBlob(const BlobSource& src, size_t max);
  void StreamBlob(const BlobSource& src);

  Registry& registry_;
  const config::Config& cfg_;
  const HttpRequest& req_;
  const bool in_memory_;
  bool fell_back_ = false;
  HttpResponse res_;
};

HttpResponse RegistryRequest::Handle() {
  if (!HostAllowed(req_.Header("Host"), cfg_.allowed_hosts)) {
    // DNS rebinding (review L8): a page's own host name pointed at this proxy.
    SetOciError(res_, Status::Denied("Host " + req_.Header("Host").substr(0, 100) +
                                   " is not in this proxy's allowed_hosts"));
    return std::move(res_);
  }
  const std::string& m = req_.method;
  if (m != "GET" && m != "HEAD") {
    res_.close = true;  // a write's body is never read: the connection cannot be reused
    SetOciError(res_, Unsupported(m));
    return std::move(res_);
  }
  const std::string& path = req_.path;
  if (path == "/v2" || path == "/v2/") {
    res_.log.route = "base";
    res_.SetContent("{}", "application/json");
    return std::move(res_);
  }
  if (path.rfind("/v2/", 0) != 0) {
    SetOciError(res_, Status::NotFound("no such endpoint " + path.substr(0, 200) +
                                         "; this is an OCI registry API (/v2/)"));
    return std::move(res_);
  }
  Target t = ParseTarget(path);
  if (!IsValidUtf8(path)) {
    // Named precisely where a repository name is expected (review L10).
    SetOciError(res_, t.kind == Kind::kUnknown ? Status::InvalidArgument("request path is not valid UTF-8")
                                             : Status::NameInvalid("repository name is not valid UTF-8"));
    return std::move(res_);
  }
  static const char* kRouteNames[] = {"manifest", "blob", "tags", "referrers", "other"};
  res_.log.route = kRouteNames[static_cast<int>(t.kind)];
  if (t.kind == Kind::kUnknown) {
    SetOciError(res_, Status::NotFound("no such endpoint " + path.substr(0, 200)));
    return std::move(res_);
  }
  if (in_memory_ && t.kind != Kind::kManifest) {
    fell_back_ = true;  // blobs and listings read the disk or ask the upstream
    return std::move(res_);
  }
  const std::string ns = req_.ParamOr("ns");
  auto route = registry_.Resolve(t.name, ns);
  if (!route.ok()) {
    SetOciError(res_, route.status());
    return std::move(res_);
  }
  res_.log.upstream = route->upstream->name;
  res_.SetHeader("OCI-Namespace", route->upstream->name);
  switch (t.kind) {
    case Kind::kManifest:
      Manifest(*route, t.ref);
      break;
    case Kind::kBlob:
      Blob(*route, t.ref);
      break;
    case Kind::kTags: {
      auto q = ParseTagsQuery(req_.Param("n"), req_.Param("last"));
      if (!q.ok()) {
        SetOciError(res_, q.status());
        break;
      }
      auto l = ListTags(registry_, *route, t.name, ns, *q);
      if (!l.ok()) {
        SetOciError(res_, l.status());
        break;
      }
      AddListing(std::move(*l), res_);
      break;
    }
    case Kind::kReferrers: {
      auto d = oci::Digest::Parse(t.ref);
      if (!d.ok()) {
        SetOciError(res_, d.status());
        break;
      }
      auto l = ListReferrers(registry_, *route, *d, req_.Param("artifactType"));
      if (!l.ok()) {
        SetOciError(res_, l.status());
        break;
      }
      AddListing(std::move(*l), res_);
      break;
    }
    case Kind::kUnknown:
      break;
  }
  return std::move(res_);
}

void RegistryRequest::Manifest(const Route& route, const std::string& ref) {
  if (ref.find(':') == std::string::npos) {
    // A tag-shaped reference that is not a valid tag names no manifest: 404,
    // as the distribution conformance suite expects (a malformed digest is 400).
    if (Status st = oci::ValidateTag(ref); !st.ok()) return SetOciError(res_, Status::ManifestUnknown(st.message()));
  }
  const std::string tag = ref.find(':') == std::string::npos ? ref : "";
  StatusOr<ManifestResult> m = Status::Internal("unset");
  if (in_memory_) {
    // Served here only when the bytes and an accepting verdict are in memory;
    // a refusal is never decided here (the worker's full check decides it).
    auto peeked = registry_.PeekManifest(route, ref);
    std::optional<Status> verdict;
    if (peeked) verdict = registry_.gate().CheckManifestCached(route, tag, peeked->digest, req_.remote_addr);
    if (!verdict || !verdict->ok()) {
      fell_back_ = true;
      return;
    }
    ++registry_.counters().manifest_hits;
    m = std::move(*peeked);
  } else {
    m = registry_.GetManifest(route, ref);
    if (!m.ok()) return SetOciError(res_, m.status());
    if (Status st = registry_.gate().CheckManifest(route, tag, m->digest, m->media_type, m->bytes, req_.remote_addr);
        !st.ok()) {
      return SetOciError(res_, st);
    }
  }
  res_.log.cache = m->cache_hit ? "hit" : "miss";
  res_.SetHeader("Docker-Content-Digest", m->digest.ToString());
  res_.SetHeader("Etag", "\"" + m->digest.ToString() + "\"");
  res_.SetContent(std::move(m->bytes), m->media_type);
}

void RegistryRequest::Blob(const Route& route, const std::string& ref) {
  const bool head = req_.method == "HEAD";
  auto d = oci::Digest::Parse(ref);
  if (!d.ok()) return SetOciError(res_, d.status());
  auto grant = registry_.gate().CheckBlob(route, *d);
  if (!grant.ok()) {
    // A blob the upstream does not have is unknown (404), policy or not; one
    // that exists but passed no gate is refused (403).
    bool hit = false;
    auto size = registry_.StatBlob(route, *d, &hit);
    if (!size.ok() && size.status().Is(Code::kBlobUnknown)) return SetOciError(res_, size.status());
    return SetOciError(res_, grant.status());
  }
  if (*grant == Gate::BlobGrant::kServeArtifactJson) return ArtifactBlob(route, *d);
  res_.SetHeader("Docker-Content-Digest", d->ToString());
  res_.SetHeader("Accept-Ranges", "bytes");
  if (head) {
    bool hit = false;
    auto size = registry_.StatBlob(route, *d, &hit);
    if (!size.ok()) return SetOciError(res_, size.status());
    res_.log.cache = hit ? "hit" : "miss";
    res_.content_type = "application/octet-stream";
    res_.length = *size >= 0 ? *size : 0;
    return;
  }
  auto src = registry_.OpenBlob(route, *d);
  if (!src.ok()) return SetOciError(res_, src.status());
  res_.log.cache = src->cache_hit ? "hit" : "miss";
  StreamBlob(*src);
}

StatusOr<std::string> RegistryRequest::ReadSmallBlob(const BlobSource& src, size_t max) {
  if (src.size > static_cast<int64_t>(max)) return Status::Denied("blob is larger than " + std::to_string(max));
  std::string out;
  if (!src.fetch) {
    Store& store = registry_.store();
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

// A blob only a signature artifact names: served whole, only when it is small
// JSON (verifier::IsArtifactBlob); DENIED otherwise.
void RegistryRequest::ArtifactBlob(const Route& route, const oci::Digest& d) {
  const auto refuse = [&](const std::string& why) {
    SetOciError(res_, Status::Denied("blob " + d.ToString() + " is named only by a signature artifact in " +
                                       route.Key() + " and " + why));
  };
  const size_t max = static_cast<size_t>(verifier::kMaxArtifactBlobBytes);
  if (req_.method == "HEAD") {
    bool hit = false;
    auto size = registry_.StatBlob(route, d, &hit);
    if (!size.ok()) return SetOciError(res_, size.status());
    if (*size < 0 || *size > static_cast<int64_t>(max)) return refuse("is not a small JSON document");
    res_.log.cache = hit ? "hit" : "miss";
    res_.SetHeader("Docker-Content-Digest", d.ToString());
    res_.content_type = "application/octet-stream";
    res_.length = *size;
    return;
  }
  auto src = registry_.OpenBlob(route, d);
  if (!src.ok()) return SetOciError(res_, src.status());
  res_.log.cache = src->cache_hit ? "hit" : "miss";
  auto bytes = ReadSmallBlob(*src, max);
  if (!bytes.ok()) {
    if (bytes.status().Is(Code::kDenied)) return refuse("is not a small JSON document");
    return SetOciError(res_, bytes.status());
  }
  // Signature payloads, envelopes, bundles and configs are JSON; a file-system
  // layer never is: it is not served through this path whatever names it.
  if (!verifier::IsArtifactBlob(*bytes)) return refuse("is not a small JSON document");
  res_.SetHeader("Docker-Content-Digest", d.ToString());
  res_.SetContent(std::move(*bytes), "application/octet-stream");
}

void RegistryRequest::StreamBlob(const BlobSource& src) {
  res_.content_type = "application/octet-stream";
  const std::string range = req_.Header("Range");
  if (!range.empty() && src.size < 0) {
    return SetOciError(res_, Status::RangeInvalid("the blob's length is not known yet; retry without Range"));
  }
  if (src.size == 0) {
    // An empty blob's bytes are known; wait for the fetch only to learn whether it committed.
    if (src.fetch) {
      std::string unused;
      if (src.fetch->Read(0, 1, 0, &unused, std::chrono::seconds(cfg_.upstream_timeout_seconds)) !=
          BlobFetch::ReadResult::kEnd) {
        return SetOciError(res_, Status::UpstreamUnavailable("upstream fetch of " + src.digest.ToString() + " failed"));
      }
    }
    res_.body.clear();
    return;
  }
  uint64_t first = 0, end = src.size < 0 ? UINT64_MAX : static_cast<uint64_t>(src.size);
  if (src.size > 0) {
    const uint64_t size = static_cast<uint64_t>(src.size);
    RangePick pick = PickRange(range, size);
    if (pick.kind == RangePick::kUnsatisfiable) {
      res_.SetHeader("Content-Range", "bytes */" + std::to_string(size));
      return SetOciError(res_, Status::RangeInvalid("range starts past the end of the " + std::to_string(size) +
                                                  "-byte blob"));
    }
    if (pick.kind == RangePick::kPartial) {
      res_.status = 206;
      res_.SetHeader("Content-Range", "bytes " + std::to_string(pick.first) + "-" + std::to_string(pick.end - 1) +
                                          "/" + std::to_string(size));
      first = pick.first;
      end = pick.end;
    }
  }
  res_.length = end == UINT64_MAX ? -1 : static_cast<int64_t>(end - first);
  Store* store = &registry_.store();
  if (!src.fetch) {
    res_.stream = StoreBody(store, src.digest, src.chunk_bytes, first, end);
  } else {
    res_.stream = FetchBody(store, src.fetch, first, end, std::chrono::seconds(cfg_.upstream_timeout_seconds));
  }
}

}  // namespace

void SetOciError(HttpResponse& res, const Status& st) {
  const auto& info = oci::LookupError(st.code());
  res.status = info.http_status;
  res.log.error = std::string(info.wire_code);
  res.log.message = st.message();
  if (st.code() == Code::kTooManyRequests) res.SetHeader("Retry-After", "1");
  res.SetContent(oci::ErrorJson(st), "application/json");
}

std::string EngineErrorBody(int status, const std::string& message) {
  Code code = status == 503 ? Code::kUpstreamUnavailable : Code::kInvalidArgument;
  if (status == 503 && message.find("too many") != std::string::npos) code = Code::kTooManyRequests;
  return oci::ErrorJson(Status(code, message));
}

std::optional<HttpResponse> TryRegistryRequestInMemory(Registry& registry, const config::Config& cfg,
                                                      const HttpRequest& req) {
  RegistryRequest r(registry, cfg, req, /*in_memory=*/true);
  HttpResponse res = r.Handle();
  if (r.fell_back()) return std::nullopt;
  return res;
}

HttpResponse HandleRegistryRequest(Registry& registry, const config::Config& cfg, const HttpRequest& req) {
  return RegistryRequest(registry, cfg, req).Handle();
}

HttpEngineOptions RegistryEngineOptions(const config::Config& cfg) {
  HttpEngineOptions o;
  o.name = "registry";
  o.io_threads = cfg.io_threads > 0 ? cfg.io_threads
                                    : static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
  o.workers = cfg.threads;
  o.max_connections = static_cast<size_t>(cfg.max_connections);
  o.max_connections_per_client = static_cast<size_t>(cfg.max_connections_per_client);
  o.max_streams = static_cast<size_t>(cfg.max_downloads);
  o.send_piece_bytes = static_cast<size_t>(cfg.chunk_bytes);
  o.keepalive_idle = std::chrono::seconds(cfg.idle_timeout_seconds);
  o.send_window = std::chrono::seconds(cfg.send_window_seconds);
  o.min_send_bytes_per_second = static_cast<uint64_t>(cfg.min_send_rate);
  o.reject_invalid_utf8_path = false;  // the handler names the part: NAME_INVALID or 400
  o.tls_cert = cfg.tls_cert;
  o.tls_key = cfg.tls_key;
  o.common_headers = {{"Docker-Distribution-API-Version", "registry/2.0"}};
  o.error_body = EngineErrorBody;
  return o;
}

HttpServer::HttpServer(const config::Config& cfg, Registry* registry) : cfg_(cfg), registry_(registry) {
  Metrics* metrics = &registry_->metrics();
  auto handler = [this](const HttpRequest& req) { return HandleRegistryRequest(*registry_, cfg_, req); };
  auto logger = [metrics](const HttpRequest& req, const HttpResponse& res, int64_t bytes, double seconds,
                          bool completed) {
    metrics->RecordRequest(res.log.route, req.method, res.status, bytes, seconds);
    if (!LogEnabled(LogLevel::kInfo)) return;
    const long long b = bytes;
    const double ms = std::round(seconds * 1e6) / 1000;  // milliseconds, 3 decimals
    const std::string path = req.path.empty() ? req.target.substr(0, 200) : req.path.substr(0, 1024);
    // In byte order of the keys: the line is then merged, not sorted.
    std::array<LogField, 12> f;
    size_t n = 0;
    f[n++] = {"bytes", b};
    if (!res.log.cache.empty()) f[n++] = {"cache", res.log.cache};
    f[n++] = {"client", req.remote_addr};
    if (!completed) f[n++] = {"cut", true};
    f[n++] = {"duration_ms", ms};
    if (!res.log.error.empty()) {
      f[n++] = {"error", res.log.error};
      f[n++] = {"error_message", res.log.message};
    }
    f[n++] = {"method", req.method};
    f[n++] = {"path", path};
    f[n++] = {"status", res.status};
    if (!res.log.upstream.empty()) f[n++] = {"upstream", res.log.upstream};
    LogFields(LogLevel::kInfo, "access", f.data(), n);
  };
  HttpEngineOptions options = RegistryEngineOptions(cfg_);
  options.in_memory_handler = [this](const HttpRequest& req) { return TryRegistryRequestInMemory(*registry_, cfg_, req); };
  engine_ = std::make_unique<HttpEngine>(std::move(options), handler, logger);
}

HttpServer::~HttpServer() = default;

Status HttpServer::Bind() { return engine_->Bind(cfg_.listen); }
void HttpServer::Serve() { engine_->Serve(); }
void HttpServer::Stop() { engine_->Stop(); }
bool HttpServer::Drain(std::chrono::steady_clock::time_point deadline) { return engine_->Drain(deadline); }

}  // namespace portcullis::proxy
