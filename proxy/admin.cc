#include "proxy/admin.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "oci/errors.h"
#include "oci/json_fields.h"
#include "oci/reference.h"
#include "proxy/producer_body.h"
#include "proxy/server.h"
#include "proxy/log.h"
#include "proxy/prefetch.h"

namespace portcullis::proxy {

namespace {

void SendJson(HttpResponse& res, const nlohmann::json& j) {
  res.SetContent(oci::DumpSafe(j) + "\n", "application/json");
}

bool TokenMatches(const std::string& header, const std::string& token) {
  const std::string prefix = "Bearer ";
  if (header.size() != prefix.size() + token.size() || header.compare(0, prefix.size(), prefix) != 0) return false;
  return CRYPTO_memcmp(header.data() + prefix.size(), token.data(), token.size()) == 0;
}

// "upstream.test/lab/small:v1" → {"upstream.test/lab/small", "v1"}; a digest
// after '@' wins; no tag means "latest". A first component naming an upstream
// picks it (Registry::Resolve); anything else is on the default upstream.
std::pair<std::string, std::string> SplitImage(const std::string& image) {
  std::string name = image, ref = "latest";
  if (auto at = name.find('@'); at != std::string::npos) {
    ref = name.substr(at + 1);
    name = name.substr(0, at);
  } else if (auto colon = name.rfind(':'); colon != std::string::npos && name.find('/', colon) == std::string::npos) {
    ref = name.substr(colon + 1);
    name = name.substr(0, colon);
  }
  return {name, ref};
}

}  // namespace

std::optional<std::string> TokenFilePermissionProblem(const std::string& path) {
  struct stat sb {};
  if (::stat(path.c_str(), &sb) != 0) return std::nullopt;
  if ((sb.st_mode & 077) == 0) return std::nullopt;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(sb.st_mode & 07777));
  return "admin token file " + path + " has mode " + mode +
         ": other users may read or replace the token (chmod 600 " + path + ")";
}

StatusOr<std::string> LoadOrCreateAdminToken(const std::string& path, const std::string& data_dir,
                                             std::string* used_path) {
  std::string p = path.empty() ? (std::filesystem::path(data_dir) / "admin.token").string() : path;
  *used_path = p;
  if (path.empty() && !std::filesystem::exists(p)) {
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1) return Status::Internal("no randomness for the admin token");
    std::string hex = oci::HexEncode(raw, sizeof raw);
    OPENSSL_cleanse(raw, sizeof raw);
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return Status::IoError("cannot create admin token file " + p);
    std::string line = hex + "\n";
    bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    ::close(fd);
    if (!ok) return Status::IoError("cannot write admin token file " + p);
  }
  if (auto problem = TokenFilePermissionProblem(p)) {
    Log(LogLevel::kWarn, "admin token file is open to other users", {{"path", p}, {"problem", *problem}});
  }
  std::ifstream in(p);
  if (!in) return Status::InvalidArgument("cannot read admin token file " + p);
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  if (token.size() < 16) {
    return Status::InvalidArgument("admin token file " + p + " holds fewer than 16 characters; use a long random token");
  }
  return token;
}

AdminServer::AdminServer(const config::Config& cfg, Registry* registry, Maintenance* maintenance, std::string token,
                         std::function<Status()> reload)
    : cfg_(cfg),
      registry_(registry),
      maintenance_(maintenance),
      token_(std::move(token)),
      reload_(std::move(reload)) {
  Install();
  HttpEngineOptions o;
  o.name = "admin";
  o.io_threads = 1;
  o.workers = 4;
  o.max_queued = 256;
  o.max_connections = 256;
  o.max_streams = 64;
  o.error_body = EngineErrorBody;  // its 503s are all caps and full queues: TOOMANYREQUESTS
  auto logger = [](const HttpRequest& req, const HttpResponse& res, int64_t, double, bool) {
    if (res.log.quiet) return;
    Log(LogLevel::kInfo, "admin", {{"method", req.method}, {"path", req.path.substr(0, 200)}, {"status", res.status},
                                    {"client", req.remote_addr}});
  };
  engine_ = std::make_unique<HttpEngine>(o, [this](const HttpRequest& req) { return Handle(req); }, logger);
}

HttpResponse AdminServer::Handle(const HttpRequest& req) {
  HttpResponse res;
  const std::string& path = req.path;
  const bool probe = path == "/healthz" || path == "/readyz";
  res.log.quiet = probe || path == "/metrics";
  if (!probe && !TokenMatches(req.Header("Authorization"), token_)) {
    res.SetHeader("WWW-Authenticate", "Bearer realm=\"portcullis-admin\"");
    SetOciError(res, Status::Unauthorized("the admin API needs Authorization: Bearer <token from the admin token file>"));
    Log(LogLevel::kWarn, "admin request refused: missing or wrong token",
        {{"method", req.method}, {"path", path.substr(0, 200)}, {"client", req.remote_addr}});
    return res;
  }
  if (req.method == "POST") {
    auto it = post_.find(path);
    if (it == post_.end()) {
      SetOciError(res, get_.count(path) ? Status::Unsupported(path + " takes GET")
                                      : Status::NotFound("no admin endpoint POST " + path.substr(0, 200)));
    } else {
      it->second(req, res);
    }
    return res;
  }
  if (req.method != "GET" && req.method != "HEAD") {
    SetOciError(res, Status::Unsupported("the admin API takes GET and POST only"));
    return res;
  }
  auto it = get_.find(path);
  if (it == get_.end()) {
    SetOciError(res, post_.count(path) ? Status::Unsupported(path + " takes POST")
                                     : Status::NotFound("no admin endpoint " + req.method + " " + path.substr(0, 200)));
    return res;
  }
  it->second(req, res);
  return res;
}

AdminServer::~AdminServer() {
  engine_.reset();
  // A prefetch still running uses the registry: let it finish (bounded).
  for (int i = 0; i < 600 && producers_.load() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

void AdminServer::Install() {
  get_["/healthz"] = ([](const HttpRequest&, HttpResponse& res) { res.SetContent("ok\n", "text/plain"); });
  get_["/readyz"] = ([this](const HttpRequest&, HttpResponse& res) {
    // The store is open for as long as the server runs; a read proves it answers.
    auto probe = registry_->store().GetTag("portcullis-readyz-probe");
    nlohmann::json checks = {{"rocksdb", probe.ok() ? "ok" : probe.status().ToString()}};
    res.status = probe.ok() ? 200 : 503;
    SendJson(res, {{"ready", probe.ok()}, {"checks", checks}});
  });
  get_["/metrics"] = ([this](const HttpRequest&, HttpResponse& res) {
    res.SetContent(registry_->metrics().Render(), "text/plain; version=0.0.4");
  });
  get_["/api/v1/cache/stats"] = ([this](const HttpRequest&, HttpResponse& res) {
    StoreStats s = registry_->store().Stats();
    SendJson(res, {{"blobs", s.blobs},
                   {"blob_bytes", s.blob_bytes},
                   {"pending_bytes", s.pending_bytes},
                   {"manifests", s.manifests},
                   {"inflight_fetches", registry_->fetches().inflight()},
                   {"max_bytes", maintenance_->max_bytes()},
                   {"evictions", maintenance_->evictions.load()},
                   {"evicted_bytes", maintenance_->evicted_bytes.load()}});
  });
  get_["/api/v1/cache/ls"] = ([this](const HttpRequest& req, HttpResponse& res) {
    const std::string repo = req.ParamOr("repo");
    Store& st = registry_->store();
    auto links = st.LinksByDigest();
    auto tags = st.TagsByDigest();
    auto blobs = st.ListBlobs();
    auto manifests = st.ListManifests();
    for (const Status& s : {links.status(), tags.status(), blobs.status(), manifests.status()}) {
      if (!s.ok()) return SetOciError(res, s);
    }
    auto repos_of = [&](const std::string& d) {
      auto it = links->find(d);
      return it == links->end() ? std::vector<std::string>() : it->second;
    };
    auto wanted = [&](const std::vector<std::string>& repos) {
      return repo.empty() || std::find(repos.begin(), repos.end(), repo) != repos.end();
    };
    nlohmann::json out = {{"blobs", nlohmann::json::array()}, {"manifests", nlohmann::json::array()}};
    for (const auto& b : *blobs) {
      auto repos = repos_of(b.digest.ToString());
      if (!wanted(repos)) continue;
      out["blobs"].push_back({{"digest", b.digest.ToString()}, {"size", b.size}, {"last_access", b.last_access},
                              {"repos", repos}});
    }
    for (const auto& m : *manifests) {
      auto repos = repos_of(m.digest.ToString());
      if (!wanted(repos)) continue;
      auto t = tags->find(m.digest.ToString());
      out["manifests"].push_back({{"digest", m.digest.ToString()}, {"media_type", m.media_type}, {"size", m.size},
                                  {"repos", repos},
                                  {"tags", t == tags->end() ? std::vector<std::string>() : t->second}});
    }
    SendJson(res, out);
  });
  post_["/api/v1/cache/purge"] = ([this](const HttpRequest& req, HttpResponse& res) {
    const std::string target = req.ParamOr("target");
    if (target.empty()) return SetOciError(res, Status::InvalidArgument("purge needs ?target=UPSTREAM/REPO or a digest"));
    auto r = maintenance_->Purge(target);
    if (!r.ok()) return SetOciError(res, r.status());
    Log(LogLevel::kInfo, "cache purged", {{"target", target}, {"blobs", r->blobs}, {"manifests", r->manifests}});
    SendJson(res, {{"blobs", r->blobs}, {"manifests", r->manifests}, {"tags", r->tags}, {"links", r->links}});
  });
  post_["/api/v1/policy/reload"] = [this](const HttpRequest&, HttpResponse& res) {
    Status st = reload_ ? reload_() : Status::Unsupported("reload is not available");
    if (!st.ok()) return SetOciError(res, st);
    auto p = registry_->gate().policy();
    SendJson(res, {{"reloaded", true}, {"policy", p ? p->origin() : ""}, {"version", p ? p->version() : ""}});
  };
  get_["/api/v1/policy/test"] = ([this](const HttpRequest& req, HttpResponse& res) {
    const std::string image = req.ParamOr("image");
    if (image.empty()) return SetOciError(res, Status::InvalidArgument("policy test needs ?image=REF"));
    auto [name, ref] = SplitImage(image);
    auto route = registry_->Resolve(name, "");
    if (!route.ok()) return SetOciError(res, route.status());
    auto m = registry_->GetManifest(*route, ref);
    if (!m.ok()) return SetOciError(res, m.status());
    const std::string tag = ref.find(':') == std::string::npos ? ref : "";
    auto d = registry_->gate().Test(*route, tag, m->digest);
    if (!d.ok()) return SetOciError(res, d.status());
    SendJson(res, {{"image", route->Key() + (tag.empty() ? "" : ":" + tag)},
                   {"digest", m->digest.ToString()},
                   {"rule", d->rule},
                   {"verdict", d->verdict()},
                   {"reason", d->reason},
                   {"keys", d->keys_matched},
                   {"details", d->details}});
  });
  post_["/api/v1/cache/gc"] = ([this](const HttpRequest&, HttpResponse& res) {
    auto r = maintenance_->Gc();
    if (!r.ok()) return SetOciError(res, r.status());
    SendJson(res, {{"blobs", r->blobs}, {"bytes", r->bytes}, {"manifests", r->manifests}});
  });
  post_["/api/v1/cache/fsck"] = ([this](const HttpRequest&, HttpResponse& res) {
    auto r = maintenance_->Fsck();
    if (!r.ok()) return SetOciError(res, r.status());
    SendJson(res, {{"checked", r->checked}, {"bad", r->bad}, {"dropped", r->bad.size()}});
  });
  post_["/api/v1/prefetch"] = ([this](const HttpRequest& req, HttpResponse& res) {
    const std::string image = req.ParamOr("image");
    if (image.empty()) return SetOciError(res, Status::InvalidArgument("prefetch needs ?image=REF"));
    auto [name, ref] = SplitImage(image);
    if (ref.find(':') == std::string::npos) {
      if (Status st = oci::ValidateTag(ref); !st.ok()) return SetOciError(res, st);
    } else if (auto d = oci::Digest::Parse(ref); !d.ok()) {
      return SetOciError(res, d.status());
    }
    auto route = registry_->Resolve(name, "");
    if (!route.ok()) return SetOciError(res, route.status());
    Registry* reg = registry_;
    Route r = *route;
    // The lines are written as the prefetch goes, on its own thread.
    res.content_type = "application/x-ndjson";
    res.stream = ProducerBody(
        [reg, r, ref = ref, image, wait = std::chrono::seconds(cfg_.upstream_timeout_seconds) * 60](const Emit& sink) {
          auto emit = [&](const nlohmann::json& j) { sink(oci::DumpSafe(j) + "\n"); };
          Status st;
          nlohmann::json summary;
          try {
            st = Prefetch(*reg, r, ref, wait, emit, &summary);
          } catch (const std::exception& e) {
            Log(LogLevel::kError, "prefetch failed with an exception", {{"image", image}, {"error", e.what()}});
            st = Status::Internal("prefetch of " + image + " failed on an internal error (see the server log)");
          } catch (...) {
            st = Status::Internal("prefetch of " + image + " failed on an internal error");
          }
          if (st.ok()) {
            summary["image"] = image;
            emit(summary);
            Log(LogLevel::kInfo, "prefetched", summary);
          } else {
            emit({{"event", "error"}, {"code", std::string(oci::CodeName(st.code()))}, {"message", st.message()}});
          }
          return true;
        },
        1 << 20, &producers_);
  });
}

Status AdminServer::Bind(const std::string& hostport) { return engine_->Bind(hostport); }
void AdminServer::Serve() { engine_->Serve(); }
void AdminServer::Stop() { engine_->Stop(); }

}  // namespace portcullis::proxy
