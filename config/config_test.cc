// Tests for config/config.h: JSON config parsing, serve flags and Finalize.
#include "config/config.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace {

using portcullis::Code;
using portcullis::Status;
using portcullis::StatusOr;
using namespace portcullis::config;

// A file under the temp folder, removed again when the object goes.
class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    static int counter = 0;
    path_ = (std::filesystem::temp_directory_path() /
             ("portcullis_config_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + ".json"))
                .string();
    std::ofstream out(path_);
    out << content;
    REQUIRE(out.good());
  }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

StatusOr<Config> Args(std::vector<std::string> args) {
  bool help = false;
  auto c = FromArgs(args, &help);
  CHECK_FALSE(help);
  return c;
}

}  // namespace

TEST_CASE("config: Parse reads every field") {
  const std::string text = R"({
    "listen": "0.0.0.0:6000",
    "data_dir": "/var/lib/portcullis",
    "upstreams": [
      {"name": "docker.io", "url": "https://registry-1.docker.io", "username": "bob",
       "password_file": "/run/secrets/hub", "ca_file": "/etc/ssl/hub.pem"},
      {"name": "upstream.test", "url": "http://127.0.0.1:5001"}
    ],
    "default_upstream": "upstream.test",
    "tag_ttl": 30,
    "max_stale": 7200,
    "docker_config": "/root/.docker/config.json",
    "threads": 8,
    "max_inflight_fetches": 4,
    "chunk_bytes": 65536,
    "upstream_timeout": 15,
    "cache_writes": "direct",
    "log_level": "debug"
  })";
  auto c = Parse(text, "test.json");
  REQUIRE_MESSAGE(c.ok(), c.status().ToString());
  CHECK(c->listen == "0.0.0.0:6000");
  CHECK(c->data_dir == "/var/lib/portcullis");
  REQUIRE(c->upstreams.size() == 2);
  CHECK(c->upstreams[0].name == "docker.io");
  CHECK(c->upstreams[0].url == "https://registry-1.docker.io");
  CHECK(c->upstreams[0].username == "bob");
  CHECK(c->upstreams[0].password_file == "/run/secrets/hub");
  CHECK(c->upstreams[0].ca_file == "/etc/ssl/hub.pem");
  CHECK(c->upstreams[1].name == "upstream.test");
  CHECK(c->upstreams[1].url == "http://127.0.0.1:5001");
  CHECK(c->upstreams[1].username == "");
  CHECK(c->upstreams[1].password_file == "");
  CHECK(c->upstreams[1].ca_file == "");
  CHECK(c->default_upstream == "upstream.test");
  CHECK(c->tag_ttl_seconds == 30);
  CHECK(c->max_stale_seconds == 7200);
  CHECK(c->docker_config == "/root/.docker/config.json");
  CHECK(c->threads == 8);
  CHECK(c->max_inflight_fetches == 4);
  CHECK(c->chunk_bytes == 65536);
  CHECK(c->upstream_timeout_seconds == 15);
  CHECK(c->cache_writes == "direct");
  CHECK(c->log_level == "debug");

  Config cfg = *c;
  Status st = Finalize(&cfg);
  CHECK_MESSAGE(st.ok(), st.ToString());
  CHECK(cfg.default_upstream == "upstream.test");
  CHECK(cfg.upstreams.size() == 2);
}

TEST_CASE("config: Parse of an empty object keeps the defaults") {
  auto c = Parse("{}", "empty.json");
  REQUIRE(c.ok());
  const Config d;
  CHECK(c->listen == d.listen);
  CHECK(c->listen == "127.0.0.1:5000");
  CHECK(c->data_dir == d.data_dir);
  CHECK(c->upstreams.empty());
  CHECK(c->default_upstream == "");
  CHECK(c->tag_ttl_seconds == 60);
  CHECK(c->max_stale_seconds == 86400);
  CHECK(c->threads == 64);
  CHECK(c->max_inflight_fetches == 32);
  CHECK(c->chunk_bytes == 1 << 20);
  CHECK(c->upstream_timeout_seconds == 60);
  CHECK(c->cache_writes == "buffered");
  CHECK(c->log_level == "info");
}

TEST_CASE("config: Parse errors name the field") {
  struct Case {
    std::string text;
    std::string needle;  // must appear in the message
  };
  const std::vector<Case> cases = {
      {R"({"bogus": 1})", "bogus"},
      {R"({"listen": "127.0.0.1:1", "tagttl": 5})", "tagttl"},
      {R"({"tag_ttl": "x"})", "tag_ttl"},
      {R"({"tag_ttl": 1.5})", "tag_ttl"},
      {R"({"tag_ttl": -1})", "tag_ttl"},
      {R"({"max_stale": true})", "max_stale"},
      {R"({"upstream_timeout": 0})", "upstream_timeout"},
      {R"({"threads": 1})", "threads"},
      {R"({"threads": 5000})", "threads"},
      {R"({"max_inflight_fetches": 0})", "max_inflight_fetches"},
      {R"({"chunk_bytes": 100})", "chunk_bytes"},
      {R"({"listen": 5000})", "listen"},
      {R"({"data_dir": null})", "data_dir"},
      {R"({"log_level": ["debug"]})", "log_level"},
      {R"({"cache_writes": true})", "cache_writes"},
      {R"({"default_upstream": 1})", "default_upstream"},
      {R"({"docker_config": {}})", "docker_config"},
      {R"({"upstreams": {}})", "upstreams"},
      {R"({"upstreams": ["docker.io"]})", "upstreams[0]"},
      {R"({"upstreams": [{"name": "a", "url": "http://a"}, {"name": "b"}]})", "upstreams[1].url"},
      {R"({"upstreams": [{"url": "http://a"}]})", "upstreams[0].name"},
      {R"({"upstreams": [{"name": 1, "url": "http://a"}]})", "upstreams[0].name"},
      {R"({"upstreams": [{"name": "a", "url": 5}]})", "upstreams[0].url"},
      {R"({"upstreams": [{"name": "a", "url": "http://a", "pasword_file": "/x"}]})", "upstreams[0].pasword_file"},
      {R"({"upstreams": [{"name": "a", "url": "http://a", "ca_file": false}]})", "upstreams[0].ca_file"},
      {"{not json", "not valid JSON"},
      {"", "not valid JSON"},
      {"[]", "top level"},
      {"\"listen\"", "top level"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto r = Parse(c.text, "my.json");
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
    CAPTURE(r.status().message());
    CHECK(Contains(r.status().message(), c.needle));
    CHECK(r.status().message().rfind("my.json", 0) == 0);  // the origin comes first
  }
}

TEST_CASE("config: LoadFile") {
  TempFile f(R"({"listen": "127.0.0.1:7777", "upstreams": [{"name": "u.test", "url": "http://u.test"}]})");
  auto c = LoadFile(f.path());
  REQUIRE_MESSAGE(c.ok(), c.status().ToString());
  CHECK(c->listen == "127.0.0.1:7777");
  REQUIRE(c->upstreams.size() == 1);
  CHECK(c->upstreams[0].name == "u.test");

  TempFile bad(R"({"listen": "127.0.0.1:7777", "extra": 1})");
  auto b = LoadFile(bad.path());
  REQUIRE_FALSE(b.ok());
  CHECK(Contains(b.status().message(), bad.path()));
  CHECK(Contains(b.status().message(), "extra"));

  auto missing = LoadFile("/nonexistent/portcullis/config.json");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == Code::kInvalidArgument);
  CHECK(Contains(missing.status().message(), "/nonexistent/portcullis/config.json"));
}

TEST_CASE("config: FromArgs flags") {
  struct Case {
    std::vector<std::string> args;
    std::function<void(const Config&)> check;
  };
  const std::vector<Case> cases = {
      {{}, [](const Config& c) {
         CHECK(c.listen == "127.0.0.1:5000");
         CHECK(c.upstreams.empty());
       }},
      {{"--listen", "0.0.0.0:7000"}, [](const Config& c) { CHECK(c.listen == "0.0.0.0:7000"); }},
      {{"--listen=0.0.0.0:7001"}, [](const Config& c) { CHECK(c.listen == "0.0.0.0:7001"); }},
      {{"--upstream", "docker.io=https://registry-1.docker.io", "--upstream", "upstream.test=http://127.0.0.1:5001",
        "--upstream=ghcr.io=https://ghcr.io"},
       [](const Config& c) {
         REQUIRE(c.upstreams.size() == 3);
         CHECK(c.upstreams[0].name == "docker.io");
         CHECK(c.upstreams[0].url == "https://registry-1.docker.io");
         CHECK(c.upstreams[1].name == "upstream.test");
         CHECK(c.upstreams[1].url == "http://127.0.0.1:5001");
         CHECK(c.upstreams[2].name == "ghcr.io");
         CHECK(c.upstreams[2].url == "https://ghcr.io");
       }},
      {{"--default-upstream", "upstream.test"}, [](const Config& c) { CHECK(c.default_upstream == "upstream.test"); }},
      {{"--tag-ttl", "30"}, [](const Config& c) { CHECK(c.tag_ttl_seconds == 30); }},
      {{"--cache-writes", "direct"}, [](const Config& c) { CHECK(c.cache_writes == "direct"); }},
      {{"--cache-writes=buffered"}, [](const Config& c) { CHECK(c.cache_writes == "buffered"); }},
      {{"--tag-ttl=0"}, [](const Config& c) { CHECK(c.tag_ttl_seconds == 0); }},
      {{"--upstream", "u.test=http://u.test", "--upstream-auth", "u.test=bob:/run/secrets/pw"},
       [](const Config& c) {
         REQUIRE(c.upstreams.size() == 1);
         CHECK(c.upstreams[0].username == "bob");
         CHECK(c.upstreams[0].password_file == "/run/secrets/pw");
       }},
      {{"--upstream", "u.test=https://u.test", "--upstream-ca", "u.test=/etc/ca.pem"},
       [](const Config& c) {
         REQUIRE(c.upstreams.size() == 1);
         CHECK(c.upstreams[0].ca_file == "/etc/ca.pem");
       }},
      {{"--data-dir", "/d", "--max-stale", "10", "--upstream-timeout", "5", "--threads", "4",
        "--max-inflight-fetches", "2", "--chunk-bytes", "8192", "--docker-config", "/dc.json", "--log-level",
        "warn"},
       [](const Config& c) {
         CHECK(c.data_dir == "/d");
         CHECK(c.max_stale_seconds == 10);
         CHECK(c.upstream_timeout_seconds == 5);
         CHECK(c.threads == 4);
         CHECK(c.max_inflight_fetches == 2);
         CHECK(c.chunk_bytes == 8192);
         CHECK(c.docker_config == "/dc.json");
         CHECK(c.log_level == "warn");
       }},
      // The last of a repeated scalar flag wins.
      {{"--listen", "a:1", "--listen", "b:2"}, [](const Config& c) { CHECK(c.listen == "b:2"); }},
  };
  for (const auto& c : cases) {
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    CAPTURE(joined);
    auto r = Args(c.args);
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    c.check(*r);
  }
}

TEST_CASE("config: FromArgs errors name the flag") {
  struct Case {
    std::vector<std::string> args;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {{"--bogus"}, "--bogus"},
      {{"--listen", "127.0.0.1:1", "--tag_ttl", "5"}, "--tag_ttl"},
      {{"stray"}, "stray"},
      {{"--listen"}, "--listen"},
      {{"--upstream"}, "--upstream"},
      {{"--default-upstream"}, "--default-upstream"},
      {{"--tag-ttl"}, "--tag-ttl"},
      {{"--tag-ttl", "x"}, "--tag-ttl"},
      {{"--tag-ttl", "-5"}, "--tag-ttl"},
      {{"--tag-ttl", "1.5"}, "--tag-ttl"},
      {{"--tag-ttl="}, "--tag-ttl"},
      {{"--threads", "1"}, "--threads"},
      {{"--chunk-bytes", "10"}, "--chunk-bytes"},
      {{"--upstream", "noequals"}, "--upstream"},
      {{"--upstream", "=http://x"}, "--upstream"},
      {{"--upstream", "name="}, "--upstream"},
      {{"--upstream-auth", "u.test=bob:/pw"}, "u.test"},  // no such upstream (yet)
      {{"--upstream", "u.test=http://x", "--upstream-auth", "u.test"}, "--upstream-auth"},
      {{"--upstream", "u.test=http://x", "--upstream-auth", "u.test=bob"}, "--upstream-auth"},
      {{"--upstream", "u.test=http://x", "--upstream-auth", "u.test=:/pw"}, "--upstream-auth"},
      {{"--upstream", "u.test=http://x", "--upstream-auth", "u.test=bob:"}, "--upstream-auth"},
      {{"--upstream", "u.test=http://x", "--upstream-auth", "other=bob:/pw"}, "other"},
      {{"--upstream-ca", "u.test=/ca.pem"}, "--upstream-ca"},
      {{"--config"}, "--config"},
      {{"--config", "/nonexistent/portcullis.json"}, "/nonexistent/portcullis.json"},
  };
  for (const auto& c : cases) {
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    CAPTURE(joined);
    bool help = true;
    auto r = FromArgs(c.args, &help);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
    CAPTURE(r.status().message());
    CHECK(Contains(r.status().message(), c.needle));
    CHECK_FALSE(help);
  }
}

TEST_CASE("config: FromArgs --help") {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--help"}, {"-h"}, {"--listen", "0.0.0.0:1", "--help"}, {"--help", "--bogus"}}) {
    CAPTURE(args.size());
    bool help = false;
    auto r = FromArgs(args, &help);
    REQUIRE(r.ok());
    CHECK(help);
  }
  bool help = true;
  auto r = FromArgs({"--listen", "0.0.0.0:1"}, &help);
  REQUIRE(r.ok());
  CHECK_FALSE(help);
  std::string usage = ServeUsage();
  for (std::string flag : {"--config", "--listen", "--upstream NAME=URL", "--default-upstream", "--tag-ttl",
                           "--upstream-auth", "--log-level"}) {
    CAPTURE(flag);
    CHECK(Contains(usage, flag));
  }
}

TEST_CASE("config: flags override a --config file") {
  TempFile f(R"({
    "listen": "1.2.3.4:1111",
    "tag_ttl": 99,
    "log_level": "warn",
    "upstreams": [{"name": "a.test", "url": "http://a.test"}, {"name": "b.test", "url": "http://b.test"}],
    "default_upstream": "b.test"
  })");

  SUBCASE("flags win wherever --config stands") {
    auto c = Args({"--listen", "5.6.7.8:2222", "--config", f.path(), "--tag-ttl", "5"});
    REQUIRE_MESSAGE(c.ok(), c.status().ToString());
    CHECK(c->listen == "5.6.7.8:2222");
    CHECK(c->tag_ttl_seconds == 5);
    CHECK(c->log_level == "warn");  // from the file
    CHECK(c->default_upstream == "b.test");
    REQUIRE(c->upstreams.size() == 2);
    CHECK(c->upstreams[0].name == "a.test");
  }
  SUBCASE("--config=FILE") {
    auto c = Args({"--config=" + f.path(), "--default-upstream", "a.test"});
    REQUIRE_MESSAGE(c.ok(), c.status().ToString());
    CHECK(c->listen == "1.2.3.4:1111");
    CHECK(c->tag_ttl_seconds == 99);
    CHECK(c->default_upstream == "a.test");
  }
  SUBCASE("--upstream flags replace the file's list") {
    auto c = Args({"--config", f.path(), "--upstream", "c.test=http://c.test", "--default-upstream", "c.test"});
    REQUIRE_MESSAGE(c.ok(), c.status().ToString());
    REQUIRE(c->upstreams.size() == 1);
    CHECK(c->upstreams[0].name == "c.test");
    Config cfg = *c;
    Status st = Finalize(&cfg);
    CHECK_MESSAGE(st.ok(), st.ToString());
  }
  SUBCASE("--upstream-auth applies to an upstream from the file") {
    auto c = Args({"--upstream-auth", "b.test=bob:/pw", "--config", f.path()});
    REQUIRE_MESSAGE(c.ok(), c.status().ToString());
    REQUIRE(c->upstreams.size() == 2);
    CHECK(c->upstreams[0].username == "");
    CHECK(c->upstreams[1].username == "bob");
    CHECK(c->upstreams[1].password_file == "/pw");
  }
  SUBCASE("a bad file is an error naming it") {
    TempFile bad(R"({"tag_ttl": "soon"})");
    auto c = Args({"--listen", "0.0.0.0:1", "--config", bad.path()});
    REQUIRE_FALSE(c.ok());
    CHECK(Contains(c.status().message(), bad.path()));
    CHECK(Contains(c.status().message(), "tag_ttl"));
  }
}

TEST_CASE("config: Finalize defaults") {
  SUBCASE("no upstreams: docker.io") {
    Config c;
    Status st = Finalize(&c);
    REQUIRE_MESSAGE(st.ok(), st.ToString());
    REQUIRE(c.upstreams.size() == 1);
    CHECK(c.upstreams[0].name == "docker.io");
    CHECK(c.upstreams[0].url == "https://registry-1.docker.io");
    CHECK(c.default_upstream == "docker.io");
  }
  SUBCASE("default_upstream defaults to the first") {
    Config c;
    c.upstreams = {{"b.test", "http://b.test", "", "", ""}, {"a.test", "http://a.test:8080/mirror", "", "", ""}};
    Status st = Finalize(&c);
    REQUIRE_MESSAGE(st.ok(), st.ToString());
    CHECK(c.default_upstream == "b.test");
    CHECK(c.upstreams.size() == 2);
  }
  SUBCASE("an explicit default is kept") {
    Config c;
    c.upstreams = {{"b.test", "http://b.test", "", "", ""}, {"a.test", "http://a.test", "u", "/pw", ""}};
    c.default_upstream = "a.test";
    Status st = Finalize(&c);
    REQUIRE_MESSAGE(st.ok(), st.ToString());
    CHECK(c.default_upstream == "a.test");
  }
}

TEST_CASE("config: Finalize accepts listen HOST:PORT forms") {
  for (std::string listen : {"127.0.0.1:5000", "0.0.0.0:80", "localhost:65535", "[::1]:5000", "proxy.test:1"}) {
    CAPTURE(listen);
    Config c;
    c.listen = listen;
    Status st = Finalize(&c);
    CHECK_MESSAGE(st.ok(), st.ToString());
  }
}

TEST_CASE("config: Finalize rejects bad configs") {
  using Mutate = std::function<void(Config*)>;
  struct Case {
    std::string name;
    Mutate mutate;
    std::string needle;
  };
  auto up = [](std::string name, std::string url) { return Upstream{std::move(name), std::move(url), "", "", ""}; };
  const std::vector<Case> cases = {
      {"unknown default",
       [&](Config* c) {
         c->upstreams = {up("a.test", "http://a.test")};
         c->default_upstream = "nope.test";
       },
       "nope.test"},
      {"default without upstreams names docker.io only", [](Config* c) { c->default_upstream = "ghcr.io"; },
       "ghcr.io"},
      {"duplicate names",
       [&](Config* c) { c->upstreams = {up("a.test", "http://a.test"), up("a.test", "http://b.test")}; },
       "a.test"},
      {"bad URL scheme", [&](Config* c) { c->upstreams = {up("a.test", "ftp://a.test")}; }, "a.test"},
      {"URL without scheme", [&](Config* c) { c->upstreams = {up("a.test", "a.test:5000")}; }, "a.test"},
      {"URL with bad port", [&](Config* c) { c->upstreams = {up("a.test", "http://a.test:99999")}; }, "a.test"},
      {"empty URL", [&](Config* c) { c->upstreams = {up("a.test", "")}; }, "a.test"},
      {"name with a slash", [&](Config* c) { c->upstreams = {up("a.test/x", "http://a.test")}; }, "a.test/x"},
      {"name with a space", [&](Config* c) { c->upstreams = {up("a test", "http://a.test")}; }, "a test"},
      {"password_file without username",
       [&](Config* c) { c->upstreams = {Upstream{"a.test", "http://a.test", "", "/pw", ""}}; }, "password_file"},
      {"listen without port", [](Config* c) { c->listen = "127.0.0.1"; }, "listen"},
      {"cache_writes neither buffered nor direct", [](Config* c) { c->cache_writes = "O_DIRECT"; }, "cache_writes"},
      {"cache_writes empty", [](Config* c) { c->cache_writes = ""; }, "expected buffered or direct"},
      {"listen port only", [](Config* c) { c->listen = "5000"; }, "listen"},
      {"listen without host", [](Config* c) { c->listen = ":5000"; }, "listen"},
      {"listen empty port", [](Config* c) { c->listen = "127.0.0.1:"; }, "listen"},
      {"listen port not a number", [](Config* c) { c->listen = "127.0.0.1:http"; }, "listen"},
      {"listen port too big", [](Config* c) { c->listen = "127.0.0.1:65536"; }, "listen"},
      {"listen empty", [](Config* c) { c->listen = ""; }, "listen"},
      {"empty data_dir", [](Config* c) { c->data_dir = ""; }, "data_dir"},
      {"bad log_level", [](Config* c) { c->log_level = "verbose"; }, "log_level"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    Config cfg;
    c.mutate(&cfg);
    Status st = Finalize(&cfg);
    REQUIRE_FALSE(st.ok());
    CHECK(st.code() == Code::kInvalidArgument);
    CAPTURE(st.message());
    CHECK(Contains(st.message(), c.needle));
  }
}

// config.h: Finalize "checks cross-field rules (..., positive TTLs)".
TEST_CASE("config: Finalize rejects negative TTLs and timeouts") {
  using Mutate = std::function<void(Config*)>;
  struct Case {
    std::string name;
    Mutate mutate;
  };
  const std::vector<Case> cases = {
      {"tag_ttl -1", [](Config* c) { c->tag_ttl_seconds = -1; }},
      {"max_stale -1", [](Config* c) { c->max_stale_seconds = -1; }},
      {"upstream_timeout 0", [](Config* c) { c->upstream_timeout_seconds = 0; }},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    Config cfg;
    c.mutate(&cfg);
    CHECK(Finalize(&cfg).code() == Code::kInvalidArgument);
  }
}

TEST_CASE("config: every example config in config/examples loads and finalizes") {
  namespace fs = std::filesystem;
  int n = 0;
  for (const auto& e : fs::directory_iterator(fs::path(PORTCULLIS_SOURCE_DIR) / "config" / "examples")) {
    if (e.path().extension() != ".json") continue;
    CAPTURE(e.path().string());
    auto cfg = portcullis::config::LoadFile(e.path().string());
    REQUIRE(cfg.ok());
    CHECK(portcullis::config::Finalize(&*cfg).ok());
    ++n;
  }
  CHECK(n >= 3);
}

TEST_CASE("config: allowed_hosts from the file and from --allowed-hosts") {
  auto c = Parse(R"({"allowed_hosts": ["localhost", "[::1]:5000", "*.mirror.internal"]})", "f.json");
  REQUIRE(c.ok());
  CHECK(c->allowed_hosts == std::vector<std::string>{"localhost", "[::1]:5000", "*.mirror.internal"});
  CHECK(Parse("{}", "f.json")->allowed_hosts.empty());  // default: any Host

  auto bad = Parse(R"({"allowed_hosts": "localhost"})", "f.json");
  CHECK(bad.status().code() == Code::kInvalidArgument);
  CHECK(Contains(bad.status().message(), "allowed_hosts: must be an array"));
  bad = Parse(R"({"allowed_hosts": ["localhost", 7]})", "f.json");
  CHECK(Contains(bad.status().message(), "allowed_hosts[1]: must be a string"));

  auto f = Args({"--allowed-hosts", "localhost,127.0.0.1:5000"});
  REQUIRE(f.ok());
  CHECK(f->allowed_hosts == std::vector<std::string>{"localhost", "127.0.0.1:5000"});
  f = Args({"--allowed-hosts=mirror.internal"});
  REQUIRE(f.ok());
  CHECK(f->allowed_hosts == std::vector<std::string>{"mirror.internal"});
  // A trailing comma leaves an empty entry (refused later by ValidateAllowedHosts).
  f = Args({"--allowed-hosts", "a,"});
  REQUIRE(f.ok());
  CHECK(f->allowed_hosts == std::vector<std::string>{"a", ""});

  // The flag replaces the file's list; an empty value empties it.
  TempFile file(R"({"allowed_hosts": ["from-file"]})");
  f = Args({"--config", file.path(), "--allowed-hosts", "from-flag"});
  REQUIRE(f.ok());
  CHECK(f->allowed_hosts == std::vector<std::string>{"from-flag"});
  f = Args({"--config", file.path(), "--allowed-hosts", ""});
  REQUIRE(f.ok());
  CHECK(f->allowed_hosts.empty());
  f = Args({"--config", file.path()});
  REQUIRE(f.ok());
  CHECK(f->allowed_hosts == std::vector<std::string>{"from-file"});
}

TEST_CASE("config: fetch limits (review M6): fetch_deadline and max_blob_bytes, file and flags") {
  auto c = Parse(R"({"fetch_deadline": 600, "max_blob_bytes": 1048576})", "f.json");
  REQUIRE_MESSAGE(c.ok(), c.status().ToString());
  CHECK(c->fetch_deadline_seconds == 600);
  CHECK(c->max_blob_bytes == 1048576);
  CHECK(EffectiveMaxBlobBytes(*c) == 1048576);

  auto f = Args({"--fetch-deadline", "30", "--max-blob-bytes", "4096"});
  REQUIRE_MESSAGE(f.ok(), f.status().ToString());
  CHECK(f->fetch_deadline_seconds == 30);
  CHECK(f->max_blob_bytes == 4096);
  CHECK(Contains(ServeUsage(), "--fetch-deadline SECONDS"));
  CHECK(Contains(ServeUsage(), "--max-blob-bytes N"));

  // Defaults: an hour; 64 GiB, whatever the cache bound (a blob larger than a
  // small cache is still served, then evicted: test_admin's bounded proxy).
  Config d;
  CHECK(d.fetch_deadline_seconds == 3600);
  CHECK(EffectiveMaxBlobBytes(d) == kDefaultMaxBlobBytes);
  d.cache_max_bytes = 10 << 20;
  CHECK(EffectiveMaxBlobBytes(d) == kDefaultMaxBlobBytes);

  for (const char* bad : {R"({"fetch_deadline": 0})", R"({"fetch_deadline": "1h"})", R"({"max_blob_bytes": -1})"}) {
    CAPTURE(bad);
    auto b = Parse(bad, "f.json");
    CHECK_FALSE(b.ok());
  }
  CHECK_FALSE(Args({"--fetch-deadline", "0"}).ok());
  CHECK_FALSE(Args({"--max-blob-bytes", "-5"}).ok());

  // A blob bound above the cache bound is allowed: such a blob is served and
  // evicted, as any blob larger than the cache always was.
  Config over;
  over.cache_max_bytes = 1 << 20;
  over.max_blob_bytes = 2 << 20;
  Status st = Finalize(&over);
  CHECK_MESSAGE(st.ok(), st.ToString());
}
