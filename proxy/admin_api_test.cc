// Tests of the admin API (proxy/admin.h) through a real socket only: the
// AdminServer listens on 127.0.0.1:<any port> and every check is an HTTP
// request with httplib::Client, so they hold for any server engine behind the
// same API. Auth is written as the attacks (no token, a wrong one, near
// misses, the token elsewhere than the header); the cache endpoints are checked
// against what the store holds.
#include <doctest/doctest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "config/config.h"
#include "proxy/admin.h"
#include "proxy/maintenance.h"
#include "proxy/registry.h"
#include "proxy/store.h"
#include "proxy/upstreams.h"
#include "tests/test_util.h"

namespace portcullis::proxy {
namespace {

using nlohmann::json;
using oci::Digest;

constexpr uint64_t kChunk = 4096;
const std::string kToken = "0123456789abcdef0123456789abcdef-admin-test-token";

// A store, a registry (its upstream is a closed port: nothing here goes
// upstream) and the admin API on 127.0.0.1:<any port>.
class AdminFixture {
 public:
  AdminFixture() {
    cfg_.listen = "127.0.0.1:0";
    cfg_.data_dir = dir_.str();
    cfg_.upstreams.push_back({"up.test", "http://127.0.0.1:9", "", "", ""});
    cfg_.default_upstream = "up.test";
    cfg_.chunk_bytes = kChunk;
    int cleaned = 0;
    auto st = Store::Open(cfg_.data_dir, &cleaned);
    REQUIRE_MESSAGE(st.ok(), st.status().ToString());
    store_ = std::shared_ptr<Store>(std::move(st).value());
    auto router = Router::Create(cfg_);
    REQUIRE_MESSAGE(router.ok(), router.status().ToString());
    registry_ = std::make_unique<Registry>(cfg_, store_, std::move(router).value());
    maintenance_ = std::make_unique<Maintenance>(store_.get(), &registry_->fetches(), 0);
    admin_ = std::make_unique<AdminServer>(cfg_, registry_.get(), maintenance_.get(), kToken,
                                           [this] { ++reloads_; return Status::Ok(); });
    REQUIRE(admin_->Bind("127.0.0.1:0").ok());
    REQUIRE(admin_->port() > 0);
    thread_ = std::thread([this] { admin_->Serve(); });
    bool up = false;
    for (int i = 0; i < 500 && !up; ++i) {
      auto r = Client().Get("/healthz");
      up = r && r->status == 200;
      if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(up);
  }
  ~AdminFixture() {
    admin_->Stop();
    thread_.join();
  }

  httplib::Client Client() const {
    httplib::Client c("127.0.0.1", admin_->port());
    c.set_connection_timeout(5, 0);
    c.set_read_timeout(20, 0);
    return c;
  }
  httplib::Headers Auth() const { return {{"Authorization", "Bearer " + kToken}}; }
  httplib::Result Get(const std::string& path) const { return Client().Get(path, Auth()); }
  httplib::Result Post(const std::string& path) const { return Client().Post(path, Auth(), "", "text/plain"); }

  // Commits `data` as blob `d` (which need not match: a damaged blob).
  void PutBlob(const Digest& d, const std::string& data) {
    REQUIRE(store_->BeginBlob(d, kChunk).ok());
    uint64_t i = 0;
    for (; (i + 1) * kChunk < data.size(); ++i) REQUIRE(store_->PutChunk(d, i, data.substr(i * kChunk, kChunk)).ok());
    REQUIRE(store_->CommitBlob(d, i, data.substr(i * kChunk), data.size(), kChunk).ok());
  }
  Store& store() { return *store_; }
  int reloads() const { return reloads_; }

 private:
  portcullis::testing::TempDir dir_;
  config::Config cfg_;
  std::shared_ptr<Store> store_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<Maintenance> maintenance_;
  std::unique_ptr<AdminServer> admin_;
  std::thread thread_;
  std::atomic<int> reloads_{0};
};

json Body(const httplib::Result& r) {
  REQUIRE(r);
  json j = json::parse(r->body, nullptr, false);
  REQUIRE_MESSAGE(!j.is_discarded(), r->body.substr(0, 200));
  return j;
}

std::string ErrorCode(const httplib::Result& r) {
  if (!r) return "<no response>";
  json j = json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.contains("errors") || !j["errors"].is_array() || j["errors"].empty() ||
      !j["errors"][0].is_object() || !j["errors"][0].contains("code") || !j["errors"][0]["code"].is_string()) {
    return "<not an OCI error: " + r->body.substr(0, 100) + ">";
  }
  return j["errors"][0]["code"].get<std::string>();
}

TEST_CASE("admin api: every endpoint but healthz and readyz refuses requests without the right token") {
  AdminFixture f;
  const std::vector<std::pair<std::string, std::string>> endpoints = {
      {"GET", "/metrics"},          {"GET", "/api/v1/cache/stats"},
      {"GET", "/api/v1/cache/ls"},  {"POST", "/api/v1/cache/purge?target=up.test/app"},
      {"POST", "/api/v1/cache/gc"}, {"POST", "/api/v1/cache/fsck"},
      {"POST", "/api/v1/policy/reload"}, {"GET", "/api/v1/policy/test?image=up.test/app:v1"},
      {"POST", "/api/v1/prefetch?image=up.test/app:v1"}, {"GET", "/no/such/endpoint"}};
  const std::vector<httplib::Headers> attacks = {
      {},
      {{"Authorization", "Bearer"}},
      {{"Authorization", "Bearer "}},
      {{"Authorization", "Bearer wrong-token-of-some-length-0123456789abcdef"}},
      {{"Authorization", "Bearer " + kToken.substr(0, kToken.size() - 1)}},  // a prefix
      {{"Authorization", "Bearer " + kToken + "x"}},                        // an extension
      {{"Authorization", "bearer " + kToken}},
      {{"Authorization", "Basic " + kToken}},
      {{"Authorization", kToken}},
      {{"Authorization", "Bearer  " + kToken}},
      {{"X-Admin-Token", kToken}},
  };
  for (const auto& endpoint : endpoints) {
    const auto& method = endpoint.first;  // not a structured binding: clang 14 cannot capture one
    const auto& path = endpoint.second;
    for (size_t a = 0; a < attacks.size(); ++a) {
      CAPTURE(method);
      CAPTURE(path);
      CAPTURE(a);
      auto c = f.Client();
      auto r = method == "GET" ? c.Get(path, attacks[a]) : c.Post(path, attacks[a], "", "text/plain");
      REQUIRE(r);
      CHECK(r->status == 401);
      CHECK(ErrorCode(r) == "UNAUTHORIZED");
      CHECK(r->get_header_value("WWW-Authenticate").find("Bearer") != std::string::npos);
    }
  }
  // The token in the query string is not a credential either.
  auto r = f.Client().Get("/api/v1/cache/stats?token=" + kToken);
  REQUIRE(r);
  CHECK(r->status == 401);
  CHECK(f.reloads() == 0);  // no refused request ran its handler

  // healthz and readyz answer anyone.
  r = f.Client().Get("/healthz");
  REQUIRE(r);
  CHECK(r->status == 200);
  r = f.Client().Get("/readyz");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(Body(r)["ready"] == true);
  // With the token, the same requests pass.
  r = f.Get("/api/v1/cache/stats");
  REQUIRE(r);
  CHECK(r->status == 200);
  r = f.Post("/api/v1/policy/reload");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(f.reloads() == 1);
}

TEST_CASE("admin api: stats and ls show what the store holds") {
  AdminFixture f;
  auto j = Body(f.Get("/api/v1/cache/stats"));
  CHECK(j["blobs"] == 0);
  CHECK(j["blob_bytes"] == 0);
  const std::string a = portcullis::testing::Pattern(3 * kChunk + 5, 1);
  const std::string b = portcullis::testing::Pattern(100, 2);
  Digest da = Digest::Sha256Of(a), db = Digest::Sha256Of(b);
  f.PutBlob(da, a);
  f.PutBlob(db, b);
  REQUIRE(f.store().PutLinks("up.test/team/app", {da}).ok());
  const std::string man = R"({"schemaVersion":2})";
  Digest dm = Digest::Sha256Of(man);
  REQUIRE(f.store().PutManifest(dm, {"application/vnd.oci.image.manifest.v1+json", man}).ok());
  REQUIRE(f.store().PutLinks("up.test/team/app", {dm}).ok());
  REQUIRE(f.store().PutTag("up.test/team/app:v1", {dm, 1}).ok());

  j = Body(f.Get("/api/v1/cache/stats"));
  CHECK(j["blobs"] == 2);
  CHECK(j["blob_bytes"] == a.size() + b.size());
  CHECK(j["manifests"] == 1);

  j = Body(f.Get("/api/v1/cache/ls"));
  REQUIRE(j["blobs"].size() == 2);
  REQUIRE(j["manifests"].size() == 1);
  CHECK(j["manifests"][0]["digest"] == dm.ToString());
  CHECK(j["manifests"][0]["tags"] == json::array({"up.test/team/app:v1"}));
  bool found = false;
  for (const auto& e : j["blobs"]) {
    if (e["digest"] == da.ToString()) {
      found = true;
      CHECK(e["size"] == a.size());
      CHECK(e["repos"] == json::array({"up.test/team/app"}));
    }
  }
  CHECK(found);
  j = Body(f.Get("/api/v1/cache/ls?repo=up.test/team/app"));
  CHECK(j["blobs"].size() == 1);  // db is in no repository
  j = Body(f.Get("/api/v1/cache/ls?repo=up.test/other"));
  CHECK(j["blobs"].empty());
  CHECK(j["manifests"].empty());
}

TEST_CASE("admin api: fsck finds and drops a damaged blob; gc and purge over HTTP") {
  AdminFixture f;
  const std::string good = portcullis::testing::Pattern(2 * kChunk, 3);
  const std::string real = portcullis::testing::Pattern(2 * kChunk, 4);
  std::string flipped = real;
  flipped[kChunk + 1] ^= 0x40;
  Digest dg = Digest::Sha256Of(good), dbad = Digest::Sha256Of(real);
  f.PutBlob(dg, good);
  f.PutBlob(dbad, flipped);
  REQUIRE(f.store().PutLinks("up.test/app", {dg, dbad}).ok());

  auto j = Body(f.Post("/api/v1/cache/fsck"));
  CHECK(j["checked"] == 2);
  CHECK(j["dropped"] == 1);
  CHECK(j["bad"] == json::array({dbad.ToString()}));
  j = Body(f.Post("/api/v1/cache/fsck"));
  CHECK(j["checked"] == 1);
  CHECK(j["bad"].empty());

  Digest orphan = Digest::Sha256Of("orphan");
  f.PutBlob(orphan, "orphan");
  j = Body(f.Post("/api/v1/cache/gc"));
  CHECK(j["blobs"] == 1);
  CHECK(j["bytes"] == 6);

  auto r = f.Post("/api/v1/cache/purge");
  REQUIRE(r);
  CHECK(r->status == 400);
  CHECK(ErrorCode(r) == "INVALID_ARGUMENT");
  r = f.Post("/api/v1/cache/purge?target=not-a-target");
  REQUIRE(r);
  CHECK(r->status == 400);
  r = f.Post("/api/v1/cache/purge?target=up.test/nothing-here");
  REQUIRE(r);
  CHECK(r->status == 404);
  j = Body(f.Post("/api/v1/cache/purge?target=" + dg.ToString()));
  CHECK(j["blobs"] == 1);
  j = Body(f.Get("/api/v1/cache/stats"));
  CHECK(j["blobs"] == 0);
}

TEST_CASE("admin api: methods, unknown paths and POST without a body length") {
  AdminFixture f;
  auto r = f.Get("/api/v1/cache/gc");  // a POST endpoint
  REQUIRE(r);
  CHECK(r->status == 405);
  CHECK(ErrorCode(r) == "UNSUPPORTED");
  r = f.Get("/api/v1/nothing");
  REQUIRE(r);
  CHECK(r->status == 404);
  CHECK(ErrorCode(r) == "NOT_FOUND");
  r = f.Post("/api/v1/nothing");
  REQUIRE(r);
  CHECK(r->status == 404);
  r = f.Client().Delete("/api/v1/cache/ls", f.Auth());
  REQUIRE(r);
  CHECK(r->status == 405);
  r = f.Client().Put("/api/v1/cache/gc", f.Auth(), "", "text/plain");
  REQUIRE(r);
  CHECK(r->status == 405);

  // A POST with no Content-Length at all (raw, as some clients send it).
  httplib::Client c = f.Client();
  httplib::Request req;
  req.method = "POST";
  req.path = "/api/v1/cache/gc";
  req.headers = f.Auth();
  auto raw = c.send(req);
  REQUIRE(raw);
  CHECK(raw->status == 200);

  // /metrics is Prometheus text.
  r = f.Get("/metrics");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->get_header_value("Content-Type").find("text/plain") == 0);
  CHECK(r->body.find("# TYPE") != std::string::npos);
}

}  // namespace
}  // namespace portcullis::proxy
