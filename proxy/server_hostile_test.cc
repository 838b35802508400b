// End-to-end tests of the proxy against hostile input, written as attacks: a
// request path with invalid UTF-8 (review L9: 500 with the exception text in
// a header), an upstream whose token service answers {"token": 1} (review M4:
// the process ended), an upstream HEAD without Content-Length (review L9:
// "Content-Length: 0"), and upstream listings and manifests of the wrong shape.
// The exception handler of last resort is tested in http_engine_test.cc.
#include <doctest/doctest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "oci/digest.h"
#include "proxy/proxy_test_util.h"

namespace {

using portcullis::oci::Digest;
using portcullis::proxy::testing::ErrorCode;
using portcullis::proxy::testing::Proxy;
using portcullis::proxy::testing::QuietLogs;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// An upstream whose /v2/ answers come from `handler`, on 127.0.0.1:<any port>.
class ScriptedUpstream {
 public:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&, const std::string& url)>;
  explicit ScriptedUpstream(Handler h) : handler_(std::move(h)) {
    svr_.set_keep_alive_timeout(1);
    svr_.Get(R"(/.*)", [this](const httplib::Request& req, httplib::Response& res) {
      ++requests;
      handler_(req, res, url());
    });
    port_ = svr_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
    auto deadline = Clock::now() + 5s;
    while (!svr_.is_running() && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    REQUIRE(svr_.is_running());
  }
  ~ScriptedUpstream() {
    svr_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::atomic<int> requests{0};

 private:
  Handler handler_;
  httplib::Server svr_;
  std::thread thread_;
  int port_ = 0;
};

bool Alive(const Proxy& proxy) {
  auto r = proxy.Client()->Get("/v2/");
  return r && r->status == 200;
}

const std::string kDigest = "sha256:" + std::string(64, 'a');

}  // namespace

TEST_CASE("proxy: a path with invalid UTF-8 gets a 4xx OCI error, not 500 with the exception text") {
  QuietLogs quiet;
  ScriptedUpstream up([](const httplib::Request&, httplib::Response& res, const std::string&) { res.status = 404; });
  Proxy proxy({{"upstream.test", up.url()}});
  auto cli = proxy.Client();
  for (const char* path : {"/v2/%FF", "/v2/%FF/manifests/v1", "/v2/r/manifests/%FF%FE", "/v2/r/blobs/sha256:%FF",
                           "/v2/%C3%28/tags/list", "/x%FF"}) {
    CAPTURE(path);
    auto r = cli->Get(path);
    REQUIRE(r);
    CHECK(r->status >= 400);
    CHECK(r->status < 500);
    CHECK(ErrorCode(r).rfind("<", 0) != 0);  // an OCI error body with a code
    CHECK_FALSE(r->has_header("EXCEPTION_WHAT"));
  }
  CHECK(up.requests == 0);
}

TEST_CASE("proxy: an upstream token service answering a token of the wrong type gives 502, and the proxy lives") {
  QuietLogs quiet;
  ScriptedUpstream up([](const httplib::Request& req, httplib::Response& res, const std::string& url) {
    if (req.path == "/token") {
      res.set_content(R"({"token": 1})", "application/json");
      return;
    }
    res.status = 401;
    res.set_header("WWW-Authenticate", "Bearer realm=\"" + url + "/token\",service=\"fake\"");
  });
  Proxy proxy({{"upstream.test", up.url()}});
  auto cli = proxy.Client();
  for (const std::string& path : {std::string("/v2/team/app/manifests/v1"), "/v2/team/app/blobs/" + kDigest,
                                  std::string("/v2/team/app/tags/list"), "/v2/team/app/referrers/" + kDigest}) {
    CAPTURE(path);
    auto r = cli->Get(path);
    REQUIRE(r);  // before the fix: no answer at all for the blob (the process was gone)
    CHECK(r->status == 502);
    CHECK(ErrorCode(r) == "UPSTREAM_INVALID");
    CHECK_FALSE(r->has_header("EXCEPTION_WHAT"));
    proxy.Settle();
    REQUIRE(Alive(proxy));
  }
  auto meta = proxy.store().GetBlobMeta(*Digest::Parse(kDigest));
  REQUIRE(meta.ok());
  CHECK_FALSE(meta->has_value());
}

TEST_CASE("proxy: HEAD of a blob whose upstream HEAD has no Content-Length is 502, not Content-Length: 0") {
  QuietLogs quiet;
  ScriptedUpstream up([](const httplib::Request&, httplib::Response& res, const std::string&) {
    // A chunked answer: httplib sends no Content-Length.
    res.set_chunked_content_provider("application/octet-stream", [](size_t, httplib::DataSink& sink) {
      sink.done();
      return true;
    });
  });
  Proxy proxy({{"upstream.test", up.url()}});
  auto r = proxy.Client()->Head("/v2/r/blobs/" + kDigest);
  REQUIRE(r);
  CHECK(r->status == 502);
  CHECK(r->get_header_value("Content-Length") != "0");
}

TEST_CASE("proxy: upstream listings and manifests of the wrong shape are 502 UPSTREAM_INVALID") {
  QuietLogs quiet;
  std::mutex mu;  // guards the script below, read on the upstream's threads
  std::string body;
  std::string content_type = "application/json";
  int status = 200;
  ScriptedUpstream up([&](const httplib::Request&, httplib::Response& res, const std::string&) {
    std::lock_guard<std::mutex> l(mu);
    res.status = status;
    res.set_content(body, content_type);
  });
  auto script = [&](std::string b, std::string ct, int st) {
    std::lock_guard<std::mutex> l(mu);
    body = std::move(b);
    content_type = std::move(ct);
    status = st;
  };
  Proxy proxy({{"upstream.test", up.url()}});
  auto cli = proxy.Client();
  struct Row {
    std::string path, body;
  };
  const std::string tags = "/v2/r/tags/list", refs = "/v2/r/referrers/" + kDigest, man = "/v2/r/manifests/v1";
  const std::vector<Row> rows = {
      {tags, "{"},
      {tags, "[]"},
      {tags, R"({"name":"r","tags":"v1"})"},
      {tags, R"({"name":"r","tags":[1,2]})"},
      {tags, R"({"name":5,"tags":[]})"},
      {refs, R"({"schemaVersion":2})"},
      {refs, R"({"manifests":[{"digest":7}]})"},
      {refs, "\"x\""},
      {man, R"({"schemaVersion":2,"config":{"digest":1}})"},
      {man, "{\"schemaVersion\":"},
      {man, R"({"schemaVersion":2,"manifests":[{"digest":")" + kDigest + R"(","size":1,"platform":{"os":5}}]})"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.path);
    CAPTURE(row.body);
    std::string ct = row.path == man ? "application/vnd.oci.image.manifest.v1+json" : "application/json";
    if (row.body.find("\"manifests\"") != std::string::npos && row.path == man) {
      ct = "application/vnd.oci.image.index.v1+json";
    }
    script(row.body, ct, 200);
    auto r = cli->Get(row.path);
    REQUIRE(r);
    CHECK(r->status == 502);
    CHECK(ErrorCode(r) == "UPSTREAM_INVALID");
  }
  // Honest listings still pass through unchanged.
  const std::string honest = R"({"name":"r","tags":["v1"]})";
  script(honest, "application/json", 200);
  auto ok = cli->Get(tags);
  REQUIRE(ok);
  CHECK(ok->status == 200);
  CHECK(ok->body == honest);
  // A 5xx is 503, a 400 is 502 (both named, neither passed through raw).
  script("<html>oops</html>", "text/html", 500);
  auto r5 = cli->Get(tags);
  REQUIRE(r5);
  CHECK(r5->status == 503);
  CHECK(ErrorCode(r5) == "UPSTREAM_UNAVAILABLE");
  script("<html>bad</html>", "text/html", 400);
  auto r4 = cli->Get(tags);
  REQUIRE(r4);
  CHECK(r4->status == 502);
  CHECK(ErrorCode(r4) == "UPSTREAM_INVALID");
}


TEST_CASE("proxy: with allowed_hosts, a request under another Host (DNS rebinding) is refused 403") {
  QuietLogs quiet;
  std::atomic<int> upstream_requests{0};
  ScriptedUpstream up([&](const httplib::Request&, httplib::Response& res, const std::string&) {
    ++upstream_requests;
    res.status = 404;
  });
  Proxy proxy({{"upstream.test", up.url()}}, [](portcullis::config::Config& c) { c.allowed_hosts = {"localhost", "127.0.0.1"}; });
  auto cli = proxy.Client();
  // A web page at evil.example rebinds its name to 127.0.0.1: its requests say so.
  auto evil = cli->Get("/v2/lab/small/manifests/v1", {{"Host", "evil.example"}});
  REQUIRE(evil);
  CHECK(evil->status == 403);
  CHECK(ErrorCode(evil) == "DENIED");
  auto good = cli->Get("/v2/", {{"Host", "localhost:" + std::to_string(proxy.port())}});
  REQUIRE(good);
  CHECK(good->status == 200);
  CHECK(upstream_requests.load() == 0);
}
