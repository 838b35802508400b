// Tests of the event-driven HTTP engine (proxy/http_engine.h) over real
// sockets on 127.0.0.1, written as the attacks of review H1/H2/L6/L10: idle
// and half-sent connections that starved every client, unbounded request
// heads, request bodies on GET, a client that stops reading, and a handler
// that throws.
#include "proxy/http_engine.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "proxy/log.h"

namespace {

using portcullis::proxy::BodySource;
using portcullis::proxy::HttpEngine;
using portcullis::proxy::HttpEngineOptions;
using portcullis::proxy::HttpRequest;
using portcullis::proxy::HttpResponse;
using SteadyClock = std::chrono::steady_clock;

struct QuietLogs {
  QuietLogs() { portcullis::proxy::SetLogLevel(portcullis::proxy::LogLevel::kError); }
  ~QuietLogs() { portcullis::proxy::SetLogLevel(portcullis::proxy::LogLevel::kInfo); }
};

// A body of `total` bytes of 'x', given in pieces, optionally failing after `fail_at`.
class XBody : public BodySource {
 public:
  XBody(uint64_t total, uint64_t fail_at, int waits) : total_(total), fail_at_(fail_at), waits_(waits) {}
  Result Next(std::string* out, size_t max) override {
    if (waits_ > 0) {
      --waits_;
      return Result::kWait;
    }
    if (given_ >= fail_at_) return Result::kFailed;
    const uint64_t n = std::min<uint64_t>({max, total_ - given_, fail_at_ - given_});
    out->append(static_cast<size_t>(n), 'x');
    given_ += n;
    return given_ >= total_ ? Result::kEnd : Result::kData;
  }

 private:
  const uint64_t total_, fail_at_;
  int waits_;
  uint64_t given_ = 0;
};

struct Finished {
  std::atomic<int> count{0};
  std::atomic<int> cut{0};
  std::atomic<int64_t> last_bytes{0};
};

// An engine on 127.0.0.1:<any> with a handler that answers by path:
// /hello, /throw, /stream?n=BYTES[&fail=AT][&waits=N], /echo?k=V, /slow (1 s),
// /p/... (answers the decoded path and the number of query parameters).
class TestServer {
 public:
  explicit TestServer(HttpEngineOptions o = {}) {
    auto handler = [](const HttpRequest& req) {
      HttpResponse r;
      if (req.path == "/throw") throw std::runtime_error("secret internals");
      if (req.path == "/slow") std::this_thread::sleep_for(std::chrono::seconds(1));
      if (req.path == "/stream") {
        const uint64_t n = std::stoull(req.ParamOr("n", "0"));
        const uint64_t fail = std::stoull(req.ParamOr("fail", std::to_string(UINT64_MAX)));
        r.stream = std::make_unique<XBody>(n, fail, std::stoi(req.ParamOr("waits", "0")));
        r.length = static_cast<int64_t>(n);
        r.content_type = "application/octet-stream";
        return r;
      }
      if (req.path.rfind("/p/", 0) == 0) {
        r.SetContent("path=" + req.path + "|params=" + std::to_string(req.params.size()), "text/plain");
        return r;
      }
      if (req.path == "/echo") {
        r.SetContent("k=" + req.ParamOr("k") + " path=" + req.path, "text/plain");
        return r;
      }
      r.SetHeader("X-Secret-Free", "yes");
      r.SetContent("hello", "text/plain");
      return r;
    };
    auto logger = [this](const HttpRequest&, const HttpResponse&, int64_t bytes, double, bool completed) {
      ++finished.count;
      if (!completed) ++finished.cut;
      finished.last_bytes = bytes;
    };
    engine = std::make_unique<HttpEngine>(o, handler, logger);
    auto st = engine->Bind("127.0.0.1:0");
    REQUIRE_MESSAGE(st.ok(), st.ToString());
    thread = std::thread([this] { engine->Serve(); });
  }
  ~TestServer() {
    engine->Stop();
    thread.join();
  }
  int port() const { return engine->port(); }

  Finished finished;
  std::unique_ptr<HttpEngine> engine;
  std::thread thread;
};

int Connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

void SendAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;  // the server may close first: the caller checks the answer
    off += static_cast<size_t>(n);
  }
}

// Reads until the peer closes or `timeout` passes; `*closed` says which.
std::string ReadUntilClose(int fd, std::chrono::milliseconds timeout, bool* closed, size_t stop_after = SIZE_MAX) {
  std::string out;
  auto deadline = SteadyClock::now() + timeout;
  *closed = false;
  char buf[65536];
  while (SteadyClock::now() < deadline && out.size() < stop_after) {
    pollfd p{fd, POLLIN, 0};
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count());
    if (::poll(&p, 1, std::max(left, 1)) <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      *closed = true;
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// One request on a new connection with Connection: close; the whole answer.
std::string Exchange(int port, const std::string& request, bool* closed = nullptr) {
  int fd = Connect(port);
  SendAll(fd, request);
  bool c = false;
  std::string out = ReadUntilClose(fd, std::chrono::seconds(5), &c);
  ::close(fd);
  if (closed) *closed = c;
  return out;
}

int StatusOf(const std::string& response) {
  if (response.size() < 12 || response.compare(0, 5, "HTTP/") != 0) return -1;
  return std::stoi(response.substr(9, 3));
}

TEST_CASE("http engine: a GET answers, keep-alive serves a second request on the same connection") {
  TestServer s;
  int fd = Connect(s.port());
  SendAll(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  bool closed = false;
  std::string a = ReadUntilClose(fd, std::chrono::seconds(5), &closed, 1);
  // Read the rest of the first answer (small) then ask again on the same socket.
  a += ReadUntilClose(fd, std::chrono::milliseconds(200), &closed);
  CHECK(StatusOf(a) == 200);
  CHECK(a.find("hello") != std::string::npos);
  CHECK_FALSE(closed);
  SendAll(fd, "GET /echo?k=a%20b+c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string b = ReadUntilClose(fd, std::chrono::seconds(5), &closed);
  ::close(fd);
  CHECK(StatusOf(b) == 200);
  CHECK(b.find("k=a b c path=/echo") != std::string::npos);
  CHECK(closed);
}

TEST_CASE("http engine: a handler that throws gets an error answer without the exception's text") {
  QuietLogs quiet;
  TestServer s;
  std::string a = Exchange(s.port(), "GET /throw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(StatusOf(a) == 500);
  CHECK(a.find("secret") == std::string::npos);
  CHECK(StatusOf(Exchange(s.port(), "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n")) == 200);
}

TEST_CASE("http engine: oversized request line, header block and header count are refused and closed") {
  QuietLogs quiet;
  TestServer s;
  bool closed = false;
  std::string line = "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n";
  CHECK(StatusOf(Exchange(s.port(), line, &closed)) == 400);
  CHECK(closed);
  std::string block = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(70 * 1024, 'b') + "\r\n\r\n";
  CHECK(StatusOf(Exchange(s.port(), block, &closed)) == 431);
  CHECK(closed);
  std::string many = "GET /hello HTTP/1.1\r\n";
  for (int i = 0; i < 101; ++i) many += "X-H" + std::to_string(i) + ": v\r\n";
  CHECK(StatusOf(Exchange(s.port(), many + "\r\n", &closed)) == 431);
  CHECK(closed);
  std::string hundred = "GET /hello HTTP/1.1\r\nConnection: close\r\n";
  for (int i = 0; i < 98; ++i) hundred += "X-H" + std::to_string(i) + ": v\r\n";
  CHECK(StatusOf(Exchange(s.port(), hundred + "\r\n")) == 200);
  // A request head that never ends, sent without pause, is cut at the limit
  // (the engine does not buffer past it).
  int fd = Connect(s.port());
  SendAll(fd, "GET /hello HTTP/1.1\r\n");
  std::string junk = "X-A: " + std::string(4000, 'a') + "\r\n";
  for (int i = 0; i < 40; ++i) SendAll(fd, junk);
  std::string answer = ReadUntilClose(fd, std::chrono::seconds(5), &closed);
  ::close(fd);
  CHECK(StatusOf(answer) == 431);
  CHECK(closed);
}

TEST_CASE("http engine: malformed requests and invalid UTF-8 paths get 400") {
  QuietLogs quiet;
  TestServer s;
  CHECK(StatusOf(Exchange(s.port(), "GET /%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n")) == 400);
  CHECK(StatusOf(Exchange(s.port(), "NOT HTTP AT ALL\r\n\r\n")) == 400);
  CHECK(StatusOf(Exchange(s.port(), "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n")) == 400);
}

TEST_CASE("http engine: a plain path and a parsed one decode alike; a character outside RFC 3986 paths gets 400") {
  QuietLogs quiet;
  TestServer s;
  auto path_of = [&](const std::string& target) {
    std::string a = Exchange(s.port(), "GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if (StatusOf(a) != 200) return "status " + std::to_string(StatusOf(a));
    auto at = a.find("path=");
    return at == std::string::npos ? std::string("no body") : a.substr(at);
  };
  // The fast path (no '%', no query) gives what Boost.URL gives: the target itself, dot segments kept.
  CHECK(path_of("/p/a/b:c@d!$&'()*+,;=-._~") == "path=/p/a/b:c@d!$&'()*+,;=-._~|params=0");
  CHECK(path_of("/p//x/./y/../z") == "path=/p//x/./y/../z|params=0");
  // The parse: percent-decoding and the query.
  CHECK(path_of("/p/%41b%2Fc") == "path=/p/Ab/c|params=0");
  CHECK(path_of("/p/a?x=1&y") == "path=/p/a|params=2");
  // Neither accepts what is not a path character.
  for (const char* bad : {"/p/a\"b", "/p/a<b", "/p/a{b}", "/p/a|b", "/p/a\\b", "/p/a^b", "/p/a`b", "p/a"}) {
    CAPTURE(bad);
    CHECK(path_of(bad) == "status 400");
  }
}

TEST_CASE("http engine: a burst of connections, taken from the listen queue together, is served whole") {
  TestServer s;
  std::vector<int> fds;
  for (int i = 0; i < 300; ++i) fds.push_back(Connect(s.port()));  // queued before the server looks
  for (int fd : fds) SendAll(fd, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  int ok = 0;
  for (int fd : fds) {
    bool closed = false;
    if (StatusOf(ReadUntilClose(fd, std::chrono::seconds(10), &closed)) == 200 && closed) ++ok;
    ::close(fd);
  }
  CHECK(ok == 300);
}

TEST_CASE("http engine: idle and half-sent connections do not starve a new client") {
  QuietLogs quiet;
  HttpEngineOptions o;
  o.workers = 2;
  o.head_timeout = std::chrono::seconds(30);
  TestServer s(o);
  std::vector<int> held;
  for (int i = 0; i < 150; ++i) held.push_back(Connect(s.port()));  // idle: nothing sent
  for (int i = 0; i < 150; ++i) {
    int fd = Connect(s.port());
    SendAll(fd, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ");  // slowloris: never finished
    held.push_back(fd);
  }
  const auto t0 = SteadyClock::now();
  std::string a = Exchange(s.port(), "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n");
  const auto took = SteadyClock::now() - t0;
  CHECK(StatusOf(a) == 200);
  CHECK(took < std::chrono::seconds(2));  // before: no answer at all while the workers were held
  CHECK(s.engine->open_connections() >= 300);
  for (int fd : held) ::close(fd);
}

TEST_CASE("http engine: a half-sent request head is cut at the head timeout") {
  QuietLogs quiet;
  HttpEngineOptions o;
  o.head_timeout = std::chrono::seconds(1);
  TestServer s(o);
  int fd = Connect(s.port());
  SendAll(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n");  // no end of head
  bool closed = false;
  std::string got = ReadUntilClose(fd, std::chrono::seconds(5), &closed);
  ::close(fd);
  CHECK(closed);
  CHECK(got.empty());  // cut, never answered
}

TEST_CASE("http engine: connections past the cap get 503 and are closed") {
  QuietLogs quiet;
  HttpEngineOptions o;
  o.max_connections = 3;
  TestServer s(o);
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) held.push_back(Connect(s.port()));
  // Let the engine accept them before the fourth arrives.
  for (int i = 0; i < 200 && s.engine->open_connections() < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  bool closed = false;
  CHECK(StatusOf(Exchange(s.port(), "GET /hello HTTP/1.1\r\n\r\n", &closed)) == 503);
  CHECK(closed);
  for (int fd : held) ::close(fd);
  for (int i = 0; i < 200 && s.engine->open_connections() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(StatusOf(Exchange(s.port(), "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n")) == 200);
}

TEST_CASE("http engine: the per-client cap refuses the client over it") {
  QuietLogs quiet;
  HttpEngineOptions o;
  o.max_connections_per_client = 2;
  TestServer s(o);
  int a = Connect(s.port()), b = Connect(s.port());
  for (int i = 0; i < 200 && s.engine->open_connections() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(StatusOf(Exchange(s.port(), "GET /hello HTTP/1.1\r\n\r\n")) == 503);
  ::close(a);
  ::close(b);
}

TEST_CASE("http engine: a GET with a body is answered and the connection closed") {
  TestServer s;
  bool closed = false;
  std::string a = Exchange(s.port(), "GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde"
                                     "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &closed);
  CHECK(StatusOf(a) == 200);
  CHECK(closed);
  // Exactly one answer: the bytes after the head were never taken as a request.
  CHECK(a.find("HTTP/1.1", 5) == std::string::npos);
}

TEST_CASE("http engine: a streamed body arrives whole, across waits") {
  TestServer s;
  bool closed = false;
  std::string a = Exchange(s.port(), "GET /stream?n=3000000&waits=5 HTTP/1.1\r\nConnection: close\r\n\r\n", &closed);
  CHECK(StatusOf(a) == 200);
  CHECK(a.find("Content-Length: 3000000") != std::string::npos);
  auto body = a.find("\r\n\r\n");
  REQUIRE(body != std::string::npos);
  CHECK(a.size() - body - 4 == 3000000);
}

TEST_CASE("http engine: a body that fails is cut short of its Content-Length") {
  QuietLogs quiet;
  TestServer s;
  bool closed = false;
  std::string a = Exchange(s.port(), "GET /stream?n=1000000&fail=400000 HTTP/1.1\r\n\r\n", &closed);
  CHECK(StatusOf(a) == 200);
  CHECK(closed);
  auto body = a.find("\r\n\r\n");
  REQUIRE(body != std::string::npos);
  CHECK(a.size() - body - 4 == 400000);
  for (int i = 0; i < 200 && s.finished.count.load() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(s.finished.cut.load() == 1);
}

TEST_CASE("http engine: a client that stops reading is cut after the send window") {
  QuietLogs quiet;
  HttpEngineOptions o;
  o.send_window = std::chrono::seconds(1);
  TestServer s(o);
  int fd = Connect(s.port());
  int small = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  SendAll(fd, "GET /stream?n=1073741824 HTTP/1.1\r\n\r\n");  // 1 GiB, never read
  for (int i = 0; i < 1000 && s.finished.count.load() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(s.finished.count.load() == 1);
  CHECK(s.finished.cut.load() == 1);
  CHECK(s.finished.last_bytes.load() < (64 << 20));
  ::close(fd);
}

TEST_CASE("http engine: drain answers new requests 503 and lets a running one finish") {
  QuietLogs quiet;
  TestServer s;
  std::string slow;
  std::thread t([&] { slow = Exchange(s.port(), "GET /slow HTTP/1.1\r\nConnection: close\r\n\r\n"); });
  for (int i = 0; i < 200 && s.engine->active_requests() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::atomic<bool> drained{false};
  std::thread d([&] { drained = s.engine->Drain(SteadyClock::now() + std::chrono::seconds(10)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::string during = Exchange(s.port(), "GET /hello HTTP/1.1\r\n\r\n");
  t.join();
  d.join();
  CHECK(StatusOf(slow) == 200);
  CHECK(StatusOf(during) == 503);
  CHECK(drained.load());
}

}  // namespace

TEST_CASE("http engine: IsValidUtf8 takes ASCII at once and still refuses every invalid sequence") {
  using portcullis::proxy::IsValidUtf8;
  CHECK(IsValidUtf8(""));
  CHECK(IsValidUtf8("/v2/library/alpine/manifests/latest"));
  CHECK(IsValidUtf8(std::string("a\0b", 3)));
  CHECK(IsValidUtf8("/v2/caf\xc3\xa9/x"));                  // é
  CHECK(IsValidUtf8("\xe2\x82\xac \xf0\x9f\x98\x80"));        // € and an emoji
  CHECK_FALSE(IsValidUtf8("/v2/\xff/x"));                    // never valid
  CHECK_FALSE(IsValidUtf8("/v2/\xc3\x28"));                  // bad continuation
  CHECK_FALSE(IsValidUtf8("/v2/\xe2\x82"));                  // truncated
  CHECK_FALSE(IsValidUtf8("/v2/\xc0\xaf"));                  // overlong "/"
  CHECK_FALSE(IsValidUtf8("/v2/\xed\xa0\x80"));              // a UTF-16 surrogate
  CHECK_FALSE(IsValidUtf8("ascii first, then \x80"));        // a lone continuation after ASCII
}
