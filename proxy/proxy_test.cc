// Tests of the Proxy facade (proxy/proxy.h): what `portcullis serve` opens.
// Opening fails cleanly and names the part; a served proxy answers both APIs;
// a broken reload leaves the old settings in force; Drain ends Serve.
#include "proxy/proxy.h"

#include <doctest/doctest.h>
#include <httplib.h>

#include <fstream>
#include <thread>

#include "proxy/fake_registry_test_util.h"
#include "proxy/log.h"
#include "proxy/registry.h"
#include "tests/test_util.h"
#include "verifier/policy.h"

namespace portcullis::proxy {
namespace {

struct Quiet {
  Quiet() { SetLogLevel(LogLevel::kError); }
  ~Quiet() { SetLogLevel(LogLevel::kInfo); }
};

config::Config BaseConfig(const std::string& dir, const std::string& upstream_url) {
  config::Config c;
  c.listen = "127.0.0.1:0";
  c.data_dir = dir + "/data";
  c.upstreams.push_back({"upstream.test", upstream_url, "", "", ""});
  c.default_upstream = "upstream.test";
  c.threads = 4;
  auto st = config::Finalize(&c);
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  c.admin_listen = "127.0.0.1:0";  // any port, as listen (Finalize refuses two equal addresses)
  return c;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

TEST_CASE("proxy facade: opening fails with the part named, and leaves nothing behind") {
  Quiet quiet;
  testing::FakeRegistry up;
  portcullis::testing::TempDir dir;
  config::Config c = BaseConfig(dir.path.string(), up.url());

  SUBCASE("a policy that does not parse") {
    c.policy = dir.path.string() + "/policy.json";
    WriteFile(c.policy, "{\"rules\": [");
    auto p = Proxy::Open(c, {});
    REQUIRE_FALSE(p.ok());
    CHECK(p.status().message().rfind("policy: ", 0) == 0);
  }
  SUBCASE("an address already in use") {
    httplib::Server taken;
    const int port = taken.bind_to_any_port("127.0.0.1");
    REQUIRE(port > 0);
    c.listen = "127.0.0.1:" + std::to_string(port);
    auto p = Proxy::Open(c, {});
    REQUIRE_FALSE(p.ok());
    CHECK(p.status().code() == Code::kIoError);
    // The store was opened and closed again: a second open of it works.
    c.listen = "127.0.0.1:0";
    auto again = Proxy::Open(c, {});
    CHECK_MESSAGE(again.ok(), again.status().ToString());
  }
  SUBCASE("an explicit admin address already in use") {
    httplib::Server taken;
    const int port = taken.bind_to_any_port("127.0.0.1");
    REQUIRE(port > 0);
    c.admin_listen = "127.0.0.1:" + std::to_string(port);
    auto p = Proxy::Open(c, {});
    REQUIRE_FALSE(p.ok());
    CHECK(p.status().message().rfind("admin API: ", 0) == 0);
  }
}

TEST_CASE("proxy facade: serves both APIs, keeps the old policy on a broken reload, and drains") {
  Quiet quiet;
  testing::FakeRegistry up;
  portcullis::testing::TempDir dir;
  config::Config c = BaseConfig(dir.path.string(), up.url());
  c.policy = dir.path.string() + "/policy.json";
  const std::string reject = R"({"rules":[{"match":"upstream.test/**","action":"reject"}],"default":"reject"})";
  WriteFile(c.policy, reject);

  config::Config next = c;
  bool broken = false;
  auto p = Proxy::Open(c, [&]() -> StatusOr<config::Config> {
    if (broken) return Status::InvalidArgument("config: line 3: not a number");
    return next;
  });
  REQUIRE_MESSAGE(p.ok(), p.status().ToString());
  Proxy& proxy = **p;
  std::thread serving([&] { proxy.Serve(); });
  REQUIRE(proxy.port() > 0);
  REQUIRE(proxy.admin_port() > 0);

  httplib::Client cli("127.0.0.1", proxy.port());
  auto base = cli.Get("/v2/");
  REQUIRE(base);
  CHECK(base->status == 200);
  httplib::Client admin("127.0.0.1", proxy.admin_port());
  auto refused = admin.Get("/api/v1/cache/stats");
  REQUIRE(refused);
  CHECK(refused->status == 401);  // no token

  const std::string version = proxy.registry().gate().policy()->version();
  // A policy file that no longer parses: the old policy stays.
  WriteFile(c.policy, "not json");
  CHECK_FALSE(proxy.Reload().ok());
  REQUIRE(proxy.registry().gate().policy() != nullptr);
  CHECK(proxy.registry().gate().policy()->version() == version);
  // A config that does not load: the same.
  broken = true;
  CHECK_FALSE(proxy.Reload().ok());
  CHECK(proxy.registry().gate().policy()->version() == version);
  // A good one is swapped in.
  broken = false;
  WriteFile(c.policy, R"({"rules":[{"match":"upstream.test/**","action":"accept"}],"default":"reject"})");
  CHECK(proxy.Reload().ok());
  CHECK(proxy.registry().gate().policy()->version() != version);

  CHECK(proxy.Drain(std::chrono::steady_clock::now() + std::chrono::seconds(5)));
  serving.join();  // Serve returned
  CHECK(proxy.WaitFetchesIdle(std::chrono::steady_clock::now() + std::chrono::seconds(5)));
}

}  // namespace
}  // namespace portcullis::proxy
