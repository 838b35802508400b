// Tests for oci/http_client.h against real httplib servers on 127.0.0.1 acting
// as a fake registry, a fake token service and a fake blob store.
#include "oci/http_client.h"

#include <doctest/doctest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "oci/base64.h"

namespace {

using portcullis::Code;
using namespace portcullis::oci;
using namespace std::chrono_literals;

// One request as a fake server saw it.
struct Hit {
  std::string path;
  std::string authorization;
  std::string user_agent;
  std::string accept;
  httplib::Params params;
};

// An httplib::Server on 127.0.0.1:<any port>, run on its own thread.
// Register handlers on `svr` before Start(); the destructor stops it.
class FakeServer {
 public:
  FakeServer() { svr.set_keep_alive_timeout(1); }
  ~FakeServer() { Stop(); }

  void Start() {
    port_ = svr.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { svr.listen_after_bind(); });
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!svr.is_running() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    REQUIRE(svr.is_running());
  }
  void Stop() {
    if (thread_.joinable()) {
      svr.stop();
      thread_.join();
    }
  }

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  void Record(const httplib::Request& req) {
    std::lock_guard<std::mutex> l(mu_);
    hits_.push_back({req.path, req.get_header_value("Authorization"), req.get_header_value("User-Agent"),
                     req.get_header_value("Accept"), req.params});
  }
  std::vector<Hit> hits() {
    std::lock_guard<std::mutex> l(mu_);
    return hits_;
  }

  httplib::Server svr;

 private:
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<Hit> hits_;
};

ClientOptions FastOptions() {
  ClientOptions o;
  o.connect_timeout = std::chrono::seconds(2);
  o.read_timeout = std::chrono::seconds(5);
  return o;
}

Url MustParse(const std::string& s) {
  auto u = ParseUrl(s);
  REQUIRE_MESSAGE(u.ok(), u.status().ToString());
  return *u;
}

HttpRequest Get(const std::string& target, const std::string& scope = "") {
  HttpRequest r;
  r.target = target;
  r.scope = scope;
  return r;
}

const std::string kAliceBasic = "Basic " + Base64Encode("alice:s3cret");

// A registry that wants `Bearer <token>` and a token service that issues it.
struct BearerPair {
  FakeServer registry, tokens;
  std::atomic<int> token_hits{0}, registry_hits{0}, registry_401s{0};
  std::string token_json = R"({"token":"tok-1","expires_in":300})";
  std::string want = "Bearer tok-1";

  void Start() {
    tokens.svr.Get("/token", [this](const httplib::Request& req, httplib::Response& res) {
      tokens.Record(req);
      ++token_hits;
      res.set_content(token_json, "application/json");
    });
    tokens.Start();
    registry.svr.Get(R"(/v2/.*)", [this](const httplib::Request& req, httplib::Response& res) {
      registry.Record(req);
      ++registry_hits;
      if (req.get_header_value("Authorization") != want) {
        ++registry_401s;
        res.status = 401;
        res.set_header("WWW-Authenticate", "Bearer realm=\"" + tokens.url() +
                                               "/token\",service=\"svc\",scope=\"repository:x:pull\"");
        res.set_content(R"({"errors":[{"code":"UNAUTHORIZED","message":"auth","detail":null}]})",
                        "application/json");
        return;
      }
      res.set_content("manifest-bytes", "application/vnd.oci.image.manifest.v1+json");
    });
    registry.Start();
  }
};

}  // namespace

TEST_CASE("oci: ParseUrl") {
  struct Case {
    std::string in;
    std::string scheme, host;
    int port;
    std::string path, origin;
  };
  const std::vector<Case> cases = {
      {"http://127.0.0.1:5000", "http", "127.0.0.1", 5000, "", "http://127.0.0.1:5000"},
      {"https://registry-1.docker.io", "https", "registry-1.docker.io", 443, "", "https://registry-1.docker.io:443"},
      {"http://upstream.test", "http", "upstream.test", 80, "", "http://upstream.test:80"},
      {"http://h:8080/", "http", "h", 8080, "", "http://h:8080"},
      {"https://h/prefix/sub/", "https", "h", 443, "/prefix/sub", "https://h:443"},
      {"http://localhost:1/p", "http", "localhost", 1, "/p", "http://localhost:1"},
      {"http://h:65535", "http", "h", 65535, "", "http://h:65535"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    auto u = ParseUrl(c.in);
    REQUIRE_MESSAGE(u.ok(), u.status().ToString());
    CHECK(u->scheme == c.scheme);
    CHECK(u->host == c.host);
    CHECK(u->port == c.port);
    CHECK(u->path == c.path);
    CHECK(u->Origin() == c.origin);
  }
  const std::vector<std::string> bad = {
      "", "127.0.0.1:5000", "ftp://h", "HTTP//h", "http:/h", "http://", "https:///path", "http://:5000",
      "http://h:", "http://h:0", "http://h:65536", "http://h:99999", "http://h:12a", "http://h:-1",
      "http://h:123456/",
  };
  for (const auto& s : bad) {
    CAPTURE(s);
    auto u = ParseUrl(s);
    REQUIRE_FALSE(u.ok());
    CHECK(u.status().code() == Code::kInvalidArgument);
  }
}

TEST_CASE("oci: ParseUrl handles bracketed IPv6 hosts") {
  auto plain = ParseUrl("http://[::1]");
  REQUIRE(plain.ok());
  CHECK(plain->host == "[::1]");
  CHECK(plain->port == 80);

  auto with_port = ParseUrl("http://[::1]:5000/v2");
  REQUIRE(with_port.ok());
  CHECK(with_port->host == "[::1]");
  CHECK(with_port->port == 5000);
  CHECK(with_port->path == "/v2");
  CHECK(with_port->Origin() == "http://[::1]:5000");
}

TEST_CASE("oci: ParseChallenge") {
  struct Case {
    std::string in;
    std::string scheme;
    std::map<std::string, std::string> params;
  };
  const std::vector<Case> cases = {
      {R"(Bearer realm="http://127.0.0.1:1234/token",service="svc",scope="repository:x:pull")",
       "bearer",
       {{"realm", "http://127.0.0.1:1234/token"}, {"service", "svc"}, {"scope", "repository:x:pull"}}},
      {R"(Bearer realm="https://auth.docker.io/token", service="registry.docker.io", scope="repository:a/b:pull,push")",
       "bearer",
       {{"realm", "https://auth.docker.io/token"},
        {"service", "registry.docker.io"},
        {"scope", "repository:a/b:pull,push"}}},
      {R"(Basic realm="Registry Realm")", "basic", {{"realm", "Registry Realm"}}},
      {"BASIC Realm=\"r\"", "basic", {{"realm", "r"}}},
      {"Basic", "basic", {}},
      {"  Bearer realm=\"r\"", "bearer", {{"realm", "r"}}},
      {"Bearer realm=unquoted,service=svc", "bearer", {{"realm", "unquoted"}, {"service", "svc"}}},
      {R"(Bearer realm="a\"b",error="invalid_token")", "bearer", {{"realm", "a\"b"}, {"error", "invalid_token"}}},
      {R"(Bearer realm="",service="s")", "bearer", {{"realm", ""}, {"service", "s"}}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    auto ch = ParseChallenge(c.in);
    REQUIRE(ch.has_value());
    CHECK(ch->scheme == c.scheme);
    CHECK(ch->params == c.params);
  }
  CHECK_FALSE(ParseChallenge("").has_value());
  CHECK_FALSE(ParseChallenge("   ").has_value());
}

TEST_CASE("oci: QueryEscape and HeaderValue") {
  struct Case {
    std::string in, out;
  };
  const std::vector<Case> cases = {
      {"", ""},
      {"abcXYZ019-_.~", "abcXYZ019-_.~"},
      {"repository:library/alpine:pull", "repository%3Alibrary%2Falpine%3Apull"},
      {"a b+c&d=e?f#g%", "a%20b%2Bc%26d%3De%3Ff%23g%25"},
      {"\xc3\xa9", "%C3%A9"},
      {std::string("\0\xff", 2), "%00%FF"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.out);
    CHECK(QueryEscape(c.in) == c.out);
  }

  Headers h;
  h.emplace("Content-Type", "application/json");
  h.emplace("www-authenticate", "Bearer realm=\"r\"");
  CHECK(HeaderValue(h, "content-type") == "application/json");
  CHECK(HeaderValue(h, "CONTENT-TYPE") == "application/json");
  CHECK(HeaderValue(h, "WWW-Authenticate") == "Bearer realm=\"r\"");
  CHECK(HeaderValue(h, "Location") == "");
}

TEST_CASE("oci: RegistryClient plain GET, base path and status values") {
  FakeServer reg;
  reg.svr.Get(R"(/prefix/v2/x/manifests/(.*))", [&](const httplib::Request& req, httplib::Response& res) {
    reg.Record(req);
    if (req.matches[1] != "t") {
      res.status = 404;
      res.set_content(R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"no","detail":null}]})",
                      "application/json");
      return;
    }
    res.set_header("Docker-Content-Digest", "sha256:abc");
    res.set_content("hello manifest", "application/vnd.oci.image.manifest.v1+json");
  });
  reg.svr.Post("/prefix/v2/x/blobs/uploads/", [&](const httplib::Request& req, httplib::Response& res) {
    reg.Record(req);
    res.status = 202;
    res.set_header("Location", "/upload/1");
    res.set_content(req.get_header_value("Content-Type") + "|" + req.body, "text/plain");
  });
  reg.Start();
  RegistryClient client(MustParse(reg.url() + "/prefix"), std::nullopt, FastOptions());

  HttpRequest req = Get("/v2/x/manifests/t");
  req.headers.emplace("Accept", "application/vnd.oci.image.manifest.v1+json");
  auto r = client.Do(req);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(r->status == 200);
  CHECK(r->body == "hello manifest");
  CHECK(HeaderValue(r->headers, "docker-content-digest") == "sha256:abc");
  CHECK(HeaderValue(r->headers, "Content-Type") == "application/vnd.oci.image.manifest.v1+json");
  CHECK(HeaderValue(r->headers, "Content-Length") == "14");

  // Any HTTP status comes back as a value.
  auto missing = client.Do(Get("/v2/x/manifests/nope"));
  REQUIRE(missing.ok());
  CHECK(missing->status == 404);
  CHECK(missing->body.find("MANIFEST_UNKNOWN") != std::string::npos);

  HttpRequest post;
  post.method = "POST";
  post.target = "/v2/x/blobs/uploads/";
  post.body = "payload";
  post.content_type = "application/x-test";
  auto p = client.Do(post);
  REQUIRE(p.ok());
  CHECK(p->status == 202);
  CHECK(p->body == "application/x-test|payload");
  CHECK(HeaderValue(p->headers, "Location") == "/upload/1");

  auto hits = reg.hits();
  REQUIRE(hits.size() == 3);
  CHECK(hits[0].path == "/prefix/v2/x/manifests/t");
  CHECK(hits[0].accept == "application/vnd.oci.image.manifest.v1+json");
  CHECK(hits[0].user_agent == "portcullis/0.1");
  CHECK(hits[0].authorization == "");
  CHECK(hits[1].path == "/prefix/v2/x/manifests/nope");
}

TEST_CASE("oci: RegistryClient returns status and headers of bodiless responses (HEAD, 204)") {
  FakeServer reg;
  reg.svr.Get("/v2/x/blobs/b", [&](const httplib::Request&, httplib::Response& res) {
    res.set_header("Docker-Content-Digest", "sha256:feed");
    res.set_content(std::string(5000, 'z'), "application/octet-stream");
  });  // httplib answers HEAD from the GET handler, with Content-Length and no body
  reg.svr.Get("/v2/x/empty", [&](const httplib::Request&, httplib::Response& res) {
    res.status = 204;
    res.set_header("X-Marker", "yes");
  });
  reg.Start();
  ClientOptions opts = FastOptions();
  opts.read_timeout = std::chrono::seconds(3);
  RegistryClient client(MustParse(reg.url()), std::nullopt, opts);

  SUBCASE("HEAD") {
    HttpRequest head = Get("/v2/x/blobs/b");
    head.method = "HEAD";
    auto start = std::chrono::steady_clock::now();
    auto r = client.Do(head);
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    CHECK(std::chrono::steady_clock::now() - start < 2s);  // no wait for a body
    CHECK(r->status == 200);
    CHECK(HeaderValue(r->headers, "Content-Length") == "5000");
    CHECK(HeaderValue(r->headers, "Docker-Content-Digest") == "sha256:feed");
    CHECK(r->body.empty());
    // The connection is still usable afterwards.
    auto get = client.Do(Get("/v2/x/blobs/b"));
    REQUIRE(get.ok());
    CHECK(get->status == 200);
    CHECK(get->body.size() == 5000);
  }
  SUBCASE("204 No Content") {
    auto r = client.Do(Get("/v2/x/empty"));
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    CHECK(r->status == 204);
    CHECK(HeaderValue(r->headers, "X-Marker") == "yes");
  }
}

TEST_CASE("oci: RegistryClient Bearer flow with credentials, token cached") {
  BearerPair bp;
  bp.Start();
  RegistryClient client(MustParse(bp.registry.url()), portcullis::oci::Credentials{"alice", "s3cret"},
                        FastOptions());

  auto r = client.Do(Get("/v2/x/manifests/t", "repository:x:pull"));
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(r->status == 200);
  CHECK(r->body == "manifest-bytes");
  CHECK(bp.token_hits.load() == 1);
  CHECK(bp.registry_hits.load() == 2);
  CHECK(bp.registry_401s.load() == 1);

  auto th = bp.tokens.hits();
  REQUIRE(th.size() == 1);
  CHECK(th[0].path == "/token");
  CHECK(th[0].authorization == kAliceBasic);
  auto svc = th[0].params.find("service");
  REQUIRE(svc != th[0].params.end());
  CHECK(svc->second == "svc");
  auto scope = th[0].params.find("scope");
  REQUIRE(scope != th[0].params.end());
  CHECK(scope->second == "repository:x:pull");

  auto rh = bp.registry.hits();
  REQUIRE(rh.size() == 2);
  CHECK(rh[0].authorization == "");
  CHECK(rh[1].authorization == "Bearer tok-1");

  // The second request sends the cached token at once; /token is not asked again.
  for (int i = 0; i < 3; ++i) {
    auto again = client.Do(Get("/v2/x/manifests/t", "repository:x:pull"));
    REQUIRE(again.ok());
    CHECK(again->status == 200);
  }
  CHECK(bp.token_hits.load() == 1);
  CHECK(bp.registry_hits.load() == 5);
  CHECK(bp.registry_401s.load() == 1);
}

TEST_CASE("oci: RegistryClient Bearer flow without credentials uses the challenge scope") {
  BearerPair bp;
  bp.token_json = R"({"access_token":"tok-2"})";
  bp.want = "Bearer tok-2";
  bp.Start();
  RegistryClient client(MustParse(bp.registry.url()), std::nullopt, FastOptions());

  auto r = client.Do(Get("/v2/x/manifests/t"));  // no scope: the challenge's is used
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(r->status == 200);
  auto th = bp.tokens.hits();
  REQUIRE(th.size() == 1);
  CHECK(th[0].authorization == "");
  auto scope = th[0].params.find("scope");
  REQUIRE(scope != th[0].params.end());
  CHECK(scope->second == "repository:x:pull");

  auto again = client.Do(Get("/v2/x/manifests/t"));
  REQUIRE(again.ok());
  CHECK(again->status == 200);
  CHECK(bp.token_hits.load() == 1);
}

// A request without a scope fetched (and cached) a token for the challenge's
// scope; the next such request should send it at once instead of taking
// another 401 round trip first.
TEST_CASE("oci: RegistryClient pre-authorizes scope-less requests with the cached token") {
  BearerPair bp;
  bp.Start();
  RegistryClient client(MustParse(bp.registry.url()), std::nullopt, FastOptions());
  REQUIRE(client.Do(Get("/v2/x/manifests/t")).ok());
  REQUIRE(bp.registry_401s.load() == 1);
  auto again = client.Do(Get("/v2/x/manifests/t"));
  REQUIRE(again.ok());
  CHECK(again->status == 200);
  CHECK(bp.token_hits.load() == 1);
  CHECK(bp.registry_401s.load() == 1);
  CHECK(bp.registry_hits.load() == 3);
}

TEST_CASE("oci: RegistryClient token service failures") {
  struct Case {
    std::string name;
    int status;
    std::string body;
    Code want;
  };
  const std::vector<Case> cases = {
      {"refused", 401, "{}", Code::kUnauthorized},
      {"forbidden", 403, "{}", Code::kUnauthorized},
      {"server error", 500, "{}", Code::kUpstreamUnavailable},
      {"not JSON", 200, "<html>", Code::kUpstreamInvalid},
      {"no token", 200, R"({"expires_in":60})", Code::kUpstreamInvalid},
      // Attacks (review M4): wrong JSON types once threw nlohmann::type_error
      // out of the client, which ended the process on a blob fetch thread.
      {"token is a number", 200, R"({"token":1})", Code::kUpstreamInvalid},
      {"token is null", 200, R"({"token":null})", Code::kUpstreamInvalid},
      {"token is an object", 200, R"({"token":{}})", Code::kUpstreamInvalid},
      {"access_token is a number", 200, R"({"access_token":5})", Code::kUpstreamInvalid},
      {"empty token, access_token an array", 200, R"({"token":"","access_token":[]})", Code::kUpstreamInvalid},
      {"array", 200, "[]", Code::kUpstreamInvalid},
      {"string", 200, R"("x")", Code::kUpstreamInvalid},
      {"truncated", 200, R"({"token":"ab)", Code::kUpstreamInvalid},
      {"token with a newline", 200, R"({"token":"a\r\nX-Evil: 1"})", Code::kUpstreamInvalid},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    FakeServer tokens, reg;
    tokens.svr.Get("/token", [&](const httplib::Request&, httplib::Response& res) {
      res.status = c.status;
      res.set_content(c.body, "application/json");
    });
    tokens.Start();
    reg.svr.Get(R"(/v2/.*)", [&](const httplib::Request&, httplib::Response& res) {
      res.status = 401;
      res.set_header("WWW-Authenticate", "Bearer realm=\"" + tokens.url() + "/token\",service=\"svc\"");
    });
    reg.Start();
    RegistryClient client(MustParse(reg.url()), portcullis::oci::Credentials{"alice", "wrong"}, FastOptions());
    portcullis::StatusOr<HttpResponse> r = portcullis::Status::Internal("not run");
    REQUIRE_NOTHROW(r = client.Do(Get("/v2/x/manifests/t", "repository:x:pull")));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == c.want);
  }
}

TEST_CASE("oci: ParseTokenReply names the problem and never throws") {
  auto ok = ParseTokenReply(R"({"token":"t1","expires_in":300})", "https://auth.test/token");
  REQUIRE(ok.ok());
  CHECK(ok->token == "t1");
  CHECK(ok->expires_in == 300);
  auto oauth = ParseTokenReply(R"({"access_token":"t2","expires_in":1e9})", "r");
  REQUIRE(oauth.ok());
  CHECK(oauth->token == "t2");
  CHECK(oauth->expires_in == 60);  // a float is not an integer: the default stays
  CHECK(ParseTokenReply(R"({"token":"t","expires_in":99999999999999})", "r")->expires_in == 86400);
  CHECK(ParseTokenReply(R"({"token":"t","expires_in":-5})", "r")->expires_in == 10);
  auto bad = ParseTokenReply(R"({"token":1})", "https://auth.test/token");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == Code::kUpstreamInvalid);
  CHECK(bad.status().message().find("token service https://auth.test/token answered a token that is not a string") !=
        std::string::npos);
  CHECK(ParseTokenReply(R"({"token":")" + std::string(kMaxTokenBytes + 1, 'a') + R"("})", "r").status().code() ==
        Code::kUpstreamInvalid);
  CHECK(ParseTokenReply("\xff\xfe", "r").status().code() == Code::kUpstreamInvalid);
}

TEST_CASE("oci: RegistryClient Basic challenge") {
  FakeServer reg;
  std::atomic<int> hits{0};
  reg.svr.Get(R"(/v2/.*)", [&](const httplib::Request& req, httplib::Response& res) {
    reg.Record(req);
    ++hits;
    if (req.get_header_value("Authorization") != kAliceBasic) {
      res.status = 401;
      res.set_header("WWW-Authenticate", "Basic realm=\"Registry Realm\"");
      return;
    }
    res.set_content("ok", "text/plain");
  });
  reg.Start();

  SUBCASE("with credentials") {
    RegistryClient client(MustParse(reg.url()), portcullis::oci::Credentials{"alice", "s3cret"}, FastOptions());
    auto r = client.Do(Get("/v2/x/tags/list"));
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    CHECK(r->status == 200);
    CHECK(r->body == "ok");
    CHECK(hits.load() == 2);
    // Afterwards Basic is sent up front.
    auto again = client.Do(Get("/v2/x/tags/list"));
    REQUIRE(again.ok());
    CHECK(again->status == 200);
    CHECK(hits.load() == 3);
    auto h = reg.hits();
    REQUIRE(h.size() == 3);
    CHECK(h[0].authorization == "");
    CHECK(h[1].authorization == kAliceBasic);
    CHECK(h[2].authorization == kAliceBasic);
  }
  SUBCASE("without credentials the 401 is returned") {
    RegistryClient client(MustParse(reg.url()), std::nullopt, FastOptions());
    auto r = client.Do(Get("/v2/x/tags/list"));
    REQUIRE(r.ok());
    CHECK(r->status == 401);
    CHECK(HeaderValue(r->headers, "WWW-Authenticate") == "Basic realm=\"Registry Realm\"");
    CHECK(hits.load() == 1);
  }
}

TEST_CASE("oci: RegistryClient redirects: credentials stay on their origin") {
  FakeServer blobs, reg;
  blobs.svr.Get("/storage/blob", [&](const httplib::Request& req, httplib::Response& res) {
    blobs.Record(req);
    res.set_content("blob-bytes", "application/octet-stream");
  });
  blobs.Start();
  reg.svr.Get(R"(/v2/.*)", [&](const httplib::Request& req, httplib::Response& res) {
    reg.Record(req);
    if (req.get_header_value("Authorization") != kAliceBasic) {
      res.status = 401;
      res.set_header("WWW-Authenticate", "Basic realm=\"r\"");
      return;
    }
    if (req.path == "/v2/x/blobs/same") {
      res.status = 302;
      res.set_header("Location", "/v2/x/blobs/moved");
    } else if (req.path == "/v2/x/blobs/moved") {
      res.set_content("same-origin-bytes", "application/octet-stream");
    } else if (req.path == "/v2/x/blobs/loop") {
      res.status = 307;
      res.set_header("Location", "/v2/x/blobs/loop");
    } else if (req.path == "/v2/x/blobs/bad") {
      res.status = 302;
      res.set_header("Location", "relative/path");
    } else {
      res.status = 307;
      res.set_header("Location", blobs.url() + "/storage/blob?sig=abc%2Fdef&x=1");
    }
  });
  reg.Start();
  RegistryClient client(MustParse(reg.url()), portcullis::oci::Credentials{"alice", "s3cret"}, FastOptions());

  SUBCASE("another origin gets no Authorization") {
    auto r = client.Do(Get("/v2/x/blobs/other"));
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    CHECK(r->status == 200);
    CHECK(r->body == "blob-bytes");
    auto rh = reg.hits();
    REQUIRE(rh.size() == 2);
    CHECK(rh[1].authorization == kAliceBasic);
    auto bh = blobs.hits();
    REQUIRE(bh.size() == 1);
    CHECK(bh[0].authorization == "");
    CHECK(bh[0].path == "/storage/blob");
    auto sig = bh[0].params.find("sig");
    REQUIRE(sig != bh[0].params.end());
    CHECK(sig->second == "abc/def");
  }
  SUBCASE("the same origin keeps it") {
    auto r = client.Do(Get("/v2/x/blobs/same"));
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    CHECK(r->status == 200);
    CHECK(r->body == "same-origin-bytes");
    auto rh = reg.hits();
    REQUIRE(rh.size() == 3);
    CHECK(rh[2].path == "/v2/x/blobs/moved");
    CHECK(rh[2].authorization == kAliceBasic);
    CHECK(blobs.hits().empty());
  }
  SUBCASE("a redirect loop ends") {
    auto r = client.Do(Get("/v2/x/blobs/loop"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kUpstreamInvalid);
    CHECK(reg.hits().size() < 12);
  }
  SUBCASE("an unusable Location") {
    auto r = client.Do(Get("/v2/x/blobs/bad"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kUpstreamInvalid);
  }
}

TEST_CASE("oci: RegistryClient Stream delivers the body in pieces") {
  std::string body;
  for (int i = 0; i < 300 * 1024; ++i) body += static_cast<char>('a' + i % 26);
  FakeServer reg;
  reg.svr.Get("/v2/x/blobs/big", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(body, "application/octet-stream");
  });
  reg.svr.Get("/v2/x/blobs/missing", [&](const httplib::Request&, httplib::Response& res) {
    res.status = 404;
    res.set_content(R"({"errors":[{"code":"BLOB_UNKNOWN"}]})", "application/json");
  });
  reg.Start();
  RegistryClient client(MustParse(reg.url()), std::nullopt, FastOptions());

  SUBCASE("2xx body goes to on_data") {
    int header_calls = 0, seen_status = 0;
    std::string content_length, got;
    int pieces = 0;
    bool data_without_headers = false;
    auto r = client.Stream(
        Get("/v2/x/blobs/big"),
        [&](int status, const Headers& h) {
          ++header_calls;
          seen_status = status;
          content_length = HeaderValue(h, "Content-Length");
          return true;
        },
        [&](const char* data, size_t n) {
          if (header_calls != 1) data_without_headers = true;
          ++pieces;
          got.append(data, n);
          return true;
        });
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    CHECK(r->status == 200);
    CHECK(r->body.empty());
    CHECK(header_calls == 1);
    CHECK(seen_status == 200);
    CHECK(content_length == std::to_string(body.size()));
    CHECK(pieces > 1);
    CHECK_FALSE(data_without_headers);
    CHECK(got == body);
  }
  SUBCASE("on_data returning false abandons the body") {
    int pieces = 0;
    auto r = client.Stream(
        Get("/v2/x/blobs/big"), [](int, const Headers&) { return true; },
        [&](const char*, size_t) {
          ++pieces;
          return false;
        });
    REQUIRE(r.ok());
    CHECK(r->status == 200);
    CHECK(pieces == 1);
  }
  SUBCASE("on_headers returning false abandons the request") {
    int pieces = 0;
    auto r = client.Stream(
        Get("/v2/x/blobs/big"), [](int, const Headers&) { return false; },
        [&](const char*, size_t) {
          ++pieces;
          return true;
        });
    REQUIRE(r.ok());
    CHECK(pieces == 0);
  }
  SUBCASE("a non-2xx body is kept in the response") {
    int seen_status = 0, pieces = 0;
    auto r = client.Stream(
        Get("/v2/x/blobs/missing"),
        [&](int status, const Headers&) {
          seen_status = status;
          return true;
        },
        [&](const char*, size_t) {
          ++pieces;
          return true;
        });
    REQUIRE(r.ok());
    CHECK(r->status == 404);
    CHECK(seen_status == 404);
    CHECK(pieces == 0);
    CHECK(r->body.find("BLOB_UNKNOWN") != std::string::npos);
  }
}

TEST_CASE("oci: RegistryClient Stream sees only the final status after the Bearer flow") {
  BearerPair bp;
  bp.Start();
  RegistryClient client(MustParse(bp.registry.url()), std::nullopt, FastOptions());
  std::vector<int> statuses;
  std::string got;
  auto r = client.Stream(
      Get("/v2/x/manifests/t", "repository:x:pull"),
      [&](int status, const Headers&) {
        statuses.push_back(status);
        return true;
      },
      [&](const char* d, size_t n) {
        got.append(d, n);
        return true;
      });
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(statuses == std::vector<int>{200});
  CHECK(got == "manifest-bytes");
  CHECK(bp.registry_401s.load() == 1);
}

TEST_CASE("oci: RegistryClient Do enforces max_body") {
  FakeServer reg;
  reg.svr.Get("/v2/x/blobs/b", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(std::string(1000, 'z'), "application/octet-stream");
  });
  reg.Start();
  RegistryClient client(MustParse(reg.url()), std::nullopt, FastOptions());

  struct Case {
    size_t max_body;
    bool ok;
  };
  for (const auto& c : std::vector<Case>{{100, false}, {999, false}, {1000, true}, {1 << 20, true}}) {
    CAPTURE(c.max_body);
    auto r = client.Do(Get("/v2/x/blobs/b"), c.max_body);
    if (c.ok) {
      REQUIRE_MESSAGE(r.ok(), r.status().ToString());
      CHECK(r->body.size() == 1000);
    } else {
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().code() == Code::kSizeInvalid);
    }
  }
}

TEST_CASE("oci: RegistryClient reports a closed port as UPSTREAM_UNAVAILABLE") {
  int port = 0;
  {
    FakeServer gone;
    gone.Start();
    port = gone.port();
  }  // stopped: nothing listens on the port any more
  RegistryClient client(MustParse("http://127.0.0.1:" + std::to_string(port)), std::nullopt, FastOptions());
  auto start = std::chrono::steady_clock::now();
  auto r = client.Do(Get("/v2/"));
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kUpstreamUnavailable);
  CHECK(r.status().message().find("127.0.0.1") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - start < 3s);

  int pieces = 0;
  auto s = client.Stream(
      Get("/v2/x/blobs/b"), [](int, const Headers&) { return true; },
      [&](const char*, size_t) {
        ++pieces;
        return true;
      });
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == Code::kUpstreamUnavailable);
  CHECK(pieces == 0);
}

TEST_CASE("oci: RepairDecodedLocation re-encodes a query that httplib decoded") {
  using portcullis::oci::RepairDecodedLocation;
  // "sig=a%2Bb%2Fc%3D" arrives decoded as "sig=a+b/c="; '+' must not reach the server raw.
  CHECK(RepairDecodedLocation("https://cdn.example/data?verify=1700-a+b/c=&x=1") ==
        "https://cdn.example/data?verify=1700-a%2Bb%2Fc%3D&x=1");
  CHECK(RepairDecodedLocation("/v2/r/blobs/uploads/u?_state=abc=&digest=sha256:00") ==
        "/v2/r/blobs/uploads/u?_state=abc%3D&digest=sha256%3A00");
  CHECK(RepairDecodedLocation("/no/query") == "/no/query");
  CHECK(RepairDecodedLocation("/p?flag") == "/p?flag");
}

TEST_CASE("oci: Basic credentials go only to an https realm or the plain-http upstream's own host (review L3)") {
  const Url https_up = MustParse("https://registry.example:443");
  const Url http_up = MustParse("http://127.0.0.1:5000");
  CHECK(CredentialsMayGoTo(https_up, MustParse("https://auth.example/token")));
  CHECK_FALSE(CredentialsMayGoTo(https_up, MustParse("http://auth.example/token")));      // downgrade
  CHECK_FALSE(CredentialsMayGoTo(https_up, MustParse("http://registry.example/token")));  // same host, still clear text
  CHECK(CredentialsMayGoTo(http_up, MustParse("http://127.0.0.1:5001/token")));
  CHECK(CredentialsMayGoTo(http_up, MustParse("https://auth.example/token")));
  CHECK_FALSE(CredentialsMayGoTo(http_up, MustParse("http://evil.example/token")));
  CHECK(RedirectAllowed(https_up, MustParse("https://storage.example")));
  CHECK_FALSE(RedirectAllowed(https_up, MustParse("http://169.254.169.254")));
  CHECK(RedirectAllowed(http_up, MustParse("http://127.0.0.1:9000")));
}

TEST_CASE("oci: a plain-http token realm on another host gets no credentials (review L3)") {
  FakeServer tokens, reg;
  tokens.svr.Get("/token", [&](const httplib::Request& req, httplib::Response& res) {
    tokens.Record(req);
    res.set_content(R"({"token":"anon"})", "application/json");
  });
  tokens.Start();
  reg.svr.Get(R"(/v2/.*)", [&](const httplib::Request& req, httplib::Response& res) {
    if (req.get_header_value("Authorization") == "Bearer anon") {
      res.set_content("ok", "text/plain");
      return;
    }
    res.status = 401;
    // "localhost" is another host name than the upstream's 127.0.0.1.
    res.set_header("WWW-Authenticate", "Bearer realm=\"http://localhost:" + std::to_string(tokens.port()) +
                                           "/token\",service=\"svc\"");
  });
  reg.Start();
  RegistryClient client(MustParse(reg.url()), portcullis::oci::Credentials{"alice", "s3cret"}, FastOptions());
  auto r = client.Do(Get("/v2/x/manifests/t", "repository:x:pull"));
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(r->status == 200);
  auto hits = tokens.hits();
  REQUIRE(hits.size() == 1);
  CHECK(hits[0].authorization.empty());  // before the fix: "Basic alice:s3cret" in clear text
}

TEST_CASE("oci: the token cache is bounded (review L4)") {
  FakeServer tokens, reg;
  std::atomic<int> issued{0};
  tokens.svr.Get("/token", [&](const httplib::Request& req, httplib::Response& res) {
    ++issued;
    res.set_content(R"({"token":"tok-)" + req.get_param_value("scope") + R"(","expires_in":3600})", "application/json");
  });
  tokens.Start();
  reg.svr.Get(R"(/v2/(.+)/manifests/t)", [&](const httplib::Request& req, httplib::Response& res) {
    const std::string scope = "repository:" + req.matches[1].str() + ":pull";
    if (req.get_header_value("Authorization") == "Bearer tok-" + scope) {
      res.set_content("ok", "text/plain");
      return;
    }
    res.status = 401;
    res.set_header("WWW-Authenticate", "Bearer realm=\"" + tokens.url() + "/token\",service=\"svc\"");
  });
  reg.Start();
  RegistryClient client(MustParse(reg.url()), std::nullopt, FastOptions());
  auto get = [&](int i) {
    const std::string repo = "r" + std::to_string(i);
    auto r = client.Do(Get("/v2/" + repo + "/manifests/t", "repository:" + repo + ":pull"));
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    CHECK(r->status == 200);
  };
  get(0);
  get(0);
  CHECK(issued == 1);  // cached
  for (int i = 1; i <= 600; ++i) get(i);  // more repositories than the cache holds
  CHECK(issued == 601);
  get(0);  // the first token was dropped to make room: asked for again
  CHECK(issued == 602);
}
