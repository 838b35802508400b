// Tests for proxy/upstreams.h: building upstream clients from the config,
// resolving client names to (upstream, repository), and docker config.json.
#include "proxy/upstreams.h"

#include <doctest/doctest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "oci/base64.h"
#include "tests/test_util.h"

namespace {

using portcullis::Code;
using portcullis::config::Config;
using portcullis::config::Upstream;
using portcullis::proxy::ReadDockerConfig;
using portcullis::proxy::Router;
using namespace std::chrono_literals;
using portcullis::testing::TempDir;


Config ThreeUpstreams() {
  Config cfg;
  cfg.upstreams = {Upstream{"docker.io", "http://127.0.0.1:1", "", "", ""},
                   Upstream{"ghcr.io", "https://ghcr.example:8443/prefix", "", "", ""},
                   Upstream{"localhost:5000", "http://127.0.0.1:5000", "", "", ""}};
  cfg.default_upstream = "docker.io";
  return cfg;
}

std::unique_ptr<Router> MakeRouter(const Config& cfg) {
  auto r = Router::Create(cfg);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  return std::move(r).value();
}

TEST_CASE("proxy: Router::Create builds one client per upstream") {
  Config cfg = ThreeUpstreams();
  auto router = MakeRouter(cfg);
  REQUIRE(router->upstreams().size() == 3);
  CHECK(router->upstreams()[0]->name == "docker.io");
  CHECK(router->upstreams()[1]->name == "ghcr.io");
  CHECK(router->upstreams()[2]->name == "localhost:5000");
  for (const auto& u : router->upstreams()) REQUIRE(u->client != nullptr);
  CHECK(router->upstreams()[1]->client->base().host == "ghcr.example");
  CHECK(router->upstreams()[1]->client->base().port == 8443);
  CHECK(router->upstreams()[1]->client->base().scheme == "https");
  CHECK(router->upstreams()[1]->client->base().path == "/prefix");
  CHECK(router->Find("ghcr.io") == router->upstreams()[1].get());
  CHECK(router->Find("quay.io") == nullptr);

  SUBCASE("a bad URL is refused") {
    cfg.upstreams[1].url = "ftp://x";
    CHECK_FALSE(Router::Create(cfg).ok());
  }
  SUBCASE("an unreadable password file is refused") {
    cfg.upstreams[1].username = "bob";
    cfg.upstreams[1].password_file = "/nonexistent/portcullis/password";
    auto r = Router::Create(cfg);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
  }
  SUBCASE("an unreadable docker config is refused") {
    cfg.docker_config = "/nonexistent/portcullis/config.json";
    auto r = Router::Create(cfg);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
  }
}

TEST_CASE("proxy: Router::Resolve routes by ns, prefix, or default") {
  auto router = MakeRouter(ThreeUpstreams());
  struct Row {
    std::string name, ns;
    std::string upstream;  // expected upstream; empty when an error is expected
    std::string repo;
    Code code = Code::kOk;
  };
  const Row rows[] = {
      // ?ns= picks the upstream by name; the name is the repository as is.
      {"foo/bar", "ghcr.io", "ghcr.io", "foo/bar"},
      {"foo/bar", "localhost:5000", "localhost:5000", "foo/bar"},
      {"ghcr.io/foo", "localhost:5000", "localhost:5000", "ghcr.io/foo"},
      {"foo/bar", "docker.io", "docker.io", "foo/bar"},
      {"alpine", "docker.io", "docker.io", "library/alpine"},
      {"alpine", "index.docker.io", "docker.io", "library/alpine"},
      {"alpine", "registry-1.docker.io", "docker.io", "library/alpine"},
      {"alpine", "ghcr.io", "ghcr.io", "alpine"},
      {"foo/bar", "quay.io", "", "", Code::kNameUnknown},
      {"foo/bar", "ghcr", "", "", Code::kNameUnknown},
      // A first component equal to an upstream name selects it and is stripped.
      {"ghcr.io/foo/bar", "", "ghcr.io", "foo/bar"},
      {"ghcr.io/foo", "", "ghcr.io", "foo"},
      {"localhost:5000/team/app", "", "localhost:5000", "team/app"},
      {"docker.io/alpine", "", "docker.io", "library/alpine"},
      {"docker.io/library/alpine", "", "docker.io", "library/alpine"},
      {"docker.io/bitnami/redis", "", "docker.io", "bitnami/redis"},
      // Otherwise: the default upstream, the name unchanged (library/ for one component).
      {"foo/bar", "", "docker.io", "foo/bar"},
      {"alpine", "", "docker.io", "library/alpine"},
      {"quay.io/foo", "", "docker.io", "quay.io/foo"},
      {"ghcr.io", "", "docker.io", "library/ghcr.io"},
      {"ghcr.iox/foo", "", "docker.io", "ghcr.iox/foo"},
      // Malformed repositories.
      {"Foo/bar", "", "", "", Code::kNameInvalid},
      {"foo//bar", "", "", "", Code::kNameInvalid},
      {"foo/bar/", "", "", "", Code::kNameInvalid},
      {"", "", "", "", Code::kNameInvalid},
      {"ghcr.io/", "", "", "", Code::kNameInvalid},
      {"ghcr.io/Foo", "", "", "", Code::kNameInvalid},
      {"foo/../bar", "", "", "", Code::kNameInvalid},
      {"foo bar", "", "", "", Code::kNameInvalid},
      {"UPPER", "ghcr.io", "", "", Code::kNameInvalid},
      {std::string(256, 'a'), "", "", "", Code::kNameInvalid},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    CAPTURE(row.ns);
    auto r = router->Resolve(row.name, row.ns);
    if (row.code != Code::kOk) {
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().code() == row.code);
      continue;
    }
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    REQUIRE(r->upstream != nullptr);
    CHECK(r->upstream->name == row.upstream);
    CHECK(r->repo == row.repo);
    CHECK(r->Key() == row.upstream + "/" + row.repo);
  }
}

TEST_CASE("proxy: Router default upstream is the configured one, else the first") {
  Config cfg = ThreeUpstreams();
  cfg.default_upstream = "ghcr.io";
  auto router = MakeRouter(cfg);
  auto r = router->Resolve("alpine", "");
  REQUIRE(r.ok());
  CHECK(r->upstream->name == "ghcr.io");
  CHECK(r->repo == "alpine");  // library/ is for Docker Hub only

  cfg.default_upstream = "";
  cfg.upstreams = {Upstream{"ghcr.io", "http://127.0.0.1:1", "", "", ""},
                   Upstream{"docker.io", "http://127.0.0.1:2", "", "", ""}};
  auto router2 = MakeRouter(cfg);
  auto r2 = router2->Resolve("team/app", "");
  REQUIRE(r2.ok());
  CHECK(r2->upstream->name == "ghcr.io");
}

TEST_CASE("proxy: ReadDockerConfig reads auths") {
  TempDir dir;
  const std::string hub = portcullis::oci::Base64Encode("hubuser:hub:pass");
  const std::string local = portcullis::oci::Base64Encode("lu:lp");
  auto path = dir.Write("config.json", R"({
    "auths": {
      "https://index.docker.io/v1/": {"auth": ")" + hub + R"("},
      "ghcr.io": {"username": "gu", "password": "gp"},
      "http://localhost:5000/v2/": {"auth": ")" + local + R"("},
      "quay.io": {"identitytoken": "opaque"},
      "weird": "not an object"
    },
    "credsStore": "desktop"
  })");
  auto auths = ReadDockerConfig(path);
  REQUIRE_MESSAGE(auths.ok(), auths.status().ToString());
  CHECK(auths->size() == 3);
  REQUIRE(auths->count("docker.io") == 1);
  CHECK(auths->at("docker.io").username == "hubuser");
  CHECK(auths->at("docker.io").password == "hub:pass");
  REQUIRE(auths->count("ghcr.io") == 1);
  CHECK(auths->at("ghcr.io").username == "gu");
  CHECK(auths->at("ghcr.io").password == "gp");
  REQUIRE(auths->count("localhost:5000") == 1);
  CHECK(auths->at("localhost:5000").username == "lu");
  CHECK(auths->at("localhost:5000").password == "lp");
  CHECK(auths->count("quay.io") == 0);
  CHECK(auths->count("https://index.docker.io/v1/") == 0);

  SUBCASE("registry-1.docker.io also means docker.io") {
    auto p = dir.Write("c2.json", R"({"auths":{"registry-1.docker.io":{"auth":")" + local + R"("}}})");
    auto a = ReadDockerConfig(p);
    REQUIRE(a.ok());
    REQUIRE(a->count("docker.io") == 1);
    CHECK(a->at("docker.io").username == "lu");
  }
  SUBCASE("no auths is an empty map") {
    auto a = ReadDockerConfig(dir.Write("c3.json", R"({"credsStore":"x"})"));
    REQUIRE(a.ok());
    CHECK(a->empty());
  }
}

TEST_CASE("proxy: ReadDockerConfig refuses malformed files") {
  TempDir dir;
  struct Row {
    const char* what;
    std::string text;
  };
  const Row rows[] = {
      {"bad base64", R"({"auths":{"ghcr.io":{"auth":"!!!not-base64!!!"}}})"},
      {"base64 with whitespace", R"({"auths":{"ghcr.io":{"auth":"dXNl cjpw"}}})"},
      {"truncated base64", R"({"auths":{"ghcr.io":{"auth":"dXNlcjpwYXNz="}}})"},
      {"no colon", R"({"auths":{"ghcr.io":{"auth":")" + portcullis::oci::Base64Encode("userpass") + R"("}}})"},
      {"auths not an object", R"({"auths":["ghcr.io"]})"},
      {"not JSON", "auths: ghcr.io"},
      {"a JSON array", "[]"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.what);
    auto a = ReadDockerConfig(dir.Write("bad.json", row.text));
    REQUIRE_FALSE(a.ok());
    CHECK(a.status().code() == Code::kInvalidArgument);
  }
  auto missing = ReadDockerConfig((dir.path / "absent.json").string());
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == Code::kInvalidArgument);
}

// An upstream that wants Basic credentials: checks that Router::Create gives
// each client the credentials the config names.
class BasicAuthUpstream {
 public:
  explicit BasicAuthUpstream(std::string want) : want_("Basic " + portcullis::oci::Base64Encode(want)) {
    svr_.Get("/v2/", [this](const httplib::Request& req, httplib::Response& res) {
      if (req.get_header_value("Authorization") != want_) {
        res.status = 401;
        res.set_header("WWW-Authenticate", "Basic realm=\"test\"");
        res.set_content("{}", "application/json");
        return;
      }
      res.set_content("{}", "application/json");
    });
    port_ = svr_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!svr_.is_running() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    REQUIRE(svr_.is_running());
  }
  ~BasicAuthUpstream() {
    svr_.stop();
    thread_.join();
  }
  int port() const { return port_; }

 private:
  std::string want_;
  httplib::Server svr_;
  std::thread thread_;
  int port_ = 0;
};

int StatusOfV2(const Router& router, const std::string& upstream) {
  const auto* u = router.Find(upstream);
  REQUIRE(u != nullptr);
  portcullis::oci::HttpRequest req;
  req.target = "/v2/";
  auto r = u->client->Do(req);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  return r->status;
}

TEST_CASE("proxy: Router::Create gives clients their credentials") {
  TempDir dir;
  BasicAuthUpstream up("alice:s3cret");
  const std::string url = "http://127.0.0.1:" + std::to_string(up.port());
  Config cfg;
  cfg.upstreams = {Upstream{"by-file.test", url, "alice", dir.Write("pw", "s3cret\r\n"), ""},
                   Upstream{"by-name.test", url, "", "", ""},
                   Upstream{"by-host.test", url, "", "", ""},
                   Upstream{"none.test", url, "", "", ""},
                   Upstream{"wrong.test", url, "alice", dir.Write("pw2", "nope\n"), ""}};
  cfg.docker_config = dir.Write("config.json", R"({"auths":{
      "by-name.test": {"auth": ")" + portcullis::oci::Base64Encode("alice:s3cret") + R"("},
      "http://127.0.0.1:)" + std::to_string(up.port()) + R"(": {"username": "alice", "password": "s3cret"}
  }})");
  auto router = MakeRouter(cfg);
  CHECK(StatusOfV2(*router, "by-file.test") == 200);
  CHECK(StatusOfV2(*router, "by-name.test") == 200);
  CHECK(StatusOfV2(*router, "by-host.test") == 200);  // matched by host:port
  CHECK(StatusOfV2(*router, "wrong.test") == 401);
  // none.test shares host:port with the docker config entry too, so it gets them.
  CHECK(StatusOfV2(*router, "none.test") == 200);

  // Without the host:port entry, an unnamed upstream has no credentials.
  cfg.docker_config = dir.Write("config2.json", R"({"auths":{
      "by-name.test": {"auth": ")" + portcullis::oci::Base64Encode("alice:s3cret") + R"("}}})");
  auto router2 = MakeRouter(cfg);
  CHECK(StatusOfV2(*router2, "by-name.test") == 200);
  CHECK(StatusOfV2(*router2, "none.test") == 401);
}

}  // namespace
