// Tests for the streamed GET (oci/stream_get.h) through RegistryClient::Stream,
// against a scripted raw TCP server on 127.0.0.1: answers httplib::Server will
// not produce (bytes past a body, a stall mid-body, a raw Location).
#include "oci/stream_get.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "oci/http_client.h"
#include "tests/test_util.h"

namespace {

using portcullis::Code;
using portcullis::Status;
using portcullis::StatusOr;
using namespace portcullis::oci;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// What the server sends for one request; `close` ends the connection after
// it, `stall` keeps it open and silent until the server stops.
struct Reply {
  std::string bytes;
  bool close = false;
  bool stall = false;
};

// Serves connections one at a time; each request (read up to its blank line)
// goes to `answer` with the index of its connection.
class ScriptServer {
 public:
  using Answer = std::function<Reply(int conn, const std::string& request)>;
  explicit ScriptServer(Answer answer) : answer_(std::move(answer)) {
    fd_ = portcullis::testing::ListenLoopback(8, &port_);
    REQUIRE(fd_ >= 0);
    thread_ = std::thread([this] { Loop(); });
  }
  ~ScriptServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_; }
  std::vector<std::string> targets() {
    std::lock_guard<std::mutex> l(mu_);
    return targets_;
  }

 private:
  // Waits for `fd` to be readable, checking stop_ every 50 ms.
  bool Readable(int fd) {
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) > 0) return true;
    }
    return false;
  }
  void Loop() {
    while (Readable(fd_)) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      const int conn = connections_++;
      std::string in;
      char buf[4096];
      bool open = true;
      while (open && Readable(c)) {
        ssize_t n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
        size_t end;
        while (open && (end = in.find("\r\n\r\n")) != std::string::npos) {
          std::string request = in.substr(0, end + 4);
          in.erase(0, end + 4);
          {
            std::lock_guard<std::mutex> l(mu_);
            targets_.push_back(request.substr(4, request.find(' ', 4) - 4));  // "GET <target> HTTP/1.1"
          }
          Reply r = answer_(conn, request);
          size_t off = 0;
          while (off < r.bytes.size()) {
            ssize_t s = ::send(c, r.bytes.data() + off, r.bytes.size() - off, MSG_NOSIGNAL);
            if (s <= 0) break;
            off += static_cast<size_t>(s);
          }
          if (r.stall) {
            while (!stop_) std::this_thread::sleep_for(20ms);
          }
          if (r.close || r.stall) open = false;
        }
      }
      ::shutdown(c, SHUT_RDWR);
      ::close(c);
    }
  }

  Answer answer_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::mutex mu_;
  std::vector<std::string> targets_;
  std::thread thread_;
};

std::string Ok(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

ClientOptions Options(int read_timeout_s) {
  ClientOptions o;
  o.connect_timeout = 2s;
  o.read_timeout = std::chrono::seconds(read_timeout_s);
  return o;
}

HttpRequest Get(const std::string& target) {
  HttpRequest r;
  r.target = target;
  return r;
}

struct Got {
  StatusOr<HttpResponse> r = Status::Internal("not run");
  std::string body;
  std::vector<size_t> pieces;
};

Got StreamAll(RegistryClient& client, const HttpRequest& req) {
  Got g;
  g.r = client.Stream(
      req, [](int, const Headers&) { return true; },
      [&](const char* d, size_t n) {
        g.pieces.push_back(n);
        g.body.append(d, n);
        return true;
      });
  return g;
}

TEST_CASE("oci: a streamed GET hands a large body over in large pieces, and reuses its connection") {
  const std::string body = portcullis::testing::Pattern(3 * 1024 * 1024 + 123, 1);
  ScriptServer srv([&](int, const std::string&) { return Reply{Ok(body)}; });
  RegistryClient client(*ParseUrl(srv.url()), std::nullopt, Options(10));
  for (int round = 0; round < 2; ++round) {
    CAPTURE(round);
    Got g = StreamAll(client, Get("/v2/x/blobs/big"));
    REQUIRE_MESSAGE(g.r.ok(), g.r.status().ToString());
    CHECK(g.r->status == 200);
    CHECK(g.body == body);
    size_t largest = 0;
    for (size_t n : g.pieces) largest = std::max(largest, n);
    // cpp-httplib hands over 4 KiB at a time; the point of this transport is more.
    CHECK(largest >= 64 * 1024);
    CHECK(largest <= internal::kStreamPiece);
  }
  CHECK(srv.connections() == 1);
}

TEST_CASE("oci: a streamed GET reads chunked and close-delimited bodies") {
  ScriptServer srv([&](int, const std::string& req) {
    if (req.find("/chunked ") != std::string::npos) {
      return Reply{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"};
    }
    return Reply{"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", true};
  });
  RegistryClient client(*ParseUrl(srv.url()), std::nullopt, Options(10));
  Got chunked = StreamAll(client, Get("/v2/x/blobs/chunked"));
  REQUIRE_MESSAGE(chunked.r.ok(), chunked.r.status().ToString());
  CHECK(chunked.body == "hello world");
  Got closed = StreamAll(client, Get("/v2/x/blobs/closed"));
  REQUIRE_MESSAGE(closed.r.ok(), closed.r.status().ToString());
  CHECK(closed.body == "until the end");
}

TEST_CASE("oci: bytes an upstream sends past a body are never read as the next answer") {
  // The attack: a second answer smuggled behind the first body, on a
  // keep-alive connection, waiting to be taken for the next request's answer.
  ScriptServer srv([&](int conn, const std::string&) {
    if (conn == 0) return Reply{Ok("hello") + Ok("evil")};
    return Reply{Ok("good")};
  });
  RegistryClient client(*ParseUrl(srv.url()), std::nullopt, Options(10));
  Got first = StreamAll(client, Get("/v2/x/blobs/a"));
  REQUIRE_MESSAGE(first.r.ok(), first.r.status().ToString());
  CHECK(first.body == "hello");
  Got second = StreamAll(client, Get("/v2/x/blobs/b"));
  REQUIRE_MESSAGE(second.r.ok(), second.r.status().ToString());
  CHECK(second.body == "good");
  CHECK(srv.connections() == 2);
}

// Streams with a BodySpace: room of `room` bytes in one buffer; a piece read
// there arrives at on_data with the buffer's address (counted in `in_place`).
struct GotInPlace : Got {
  size_t in_place = 0;
  size_t spaces = 0;
};

GotInPlace StreamInPlace(RegistryClient& client, const std::string& target, size_t room, size_t abandon_after = SIZE_MAX) {
  GotInPlace g;
  std::vector<char> buffer(room);
  HttpRequest req = Get(target);
  req.body_space = [&]() -> std::pair<char*, size_t> {
    if (g.spaces++ >= abandon_after) return {nullptr, 0};
    return {buffer.data(), buffer.size()};
  };
  g.r = client.Stream(
      req, [](int, const Headers&) { return true; },
      [&](const char* d, size_t n) {
        g.pieces.push_back(n);
        if (d == buffer.data()) ++g.in_place;
        g.body.append(d, n);
        return true;
      });
  return g;
}

TEST_CASE("oci: a body with a Content-Length is read straight into the caller's space, and the connection reused") {
  const std::string body = portcullis::testing::Pattern(3 * 1024 * 1024 + 123, 4);
  ScriptServer srv([&](int, const std::string&) { return Reply{Ok(body)}; });
  RegistryClient client(*ParseUrl(srv.url()), std::nullopt, Options(10));
  for (int round = 0; round < 2; ++round) {
    CAPTURE(round);
    GotInPlace g = StreamInPlace(client, "/v2/x/blobs/big", 300 * 1000);
    REQUIRE_MESSAGE(g.r.ok(), g.r.status().ToString());
    CHECK(g.r->status == 200);
    CHECK(g.body == body);
    CHECK(g.in_place == g.pieces.size());  // every piece was read where the caller said
    for (size_t n : g.pieces) CHECK(n <= 300 * 1000);
  }
  CHECK(srv.connections() == 1);
}

TEST_CASE("oci: read into the caller's space, bytes past a body are still never read as the next answer") {
  ScriptServer srv([&](int conn, const std::string&) {
    if (conn == 0) return Reply{Ok("hello") + Ok("evil")};
    return Reply{Ok("good")};
  });
  RegistryClient client(*ParseUrl(srv.url()), std::nullopt, Options(10));
  GotInPlace first = StreamInPlace(client, "/v2/x/blobs/a", 1 << 20);
  REQUIRE_MESSAGE(first.r.ok(), first.r.status().ToString());
  CHECK(first.body == "hello");
  GotInPlace second = StreamInPlace(client, "/v2/x/blobs/b", 1 << 20);
  REQUIRE_MESSAGE(second.r.ok(), second.r.status().ToString());
  CHECK(second.body == "good");
  CHECK(srv.connections() == 2);
}

TEST_CASE("oci: a body shorter than its Content-Length fails when read into the caller's space") {
  ScriptServer srv([&](int, const std::string&) {
    return Reply{"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + std::string(5000, 'x'), true};
  });
  RegistryClient client(*ParseUrl(srv.url()), std::nullopt, Options(10));
  GotInPlace g = StreamInPlace(client, "/v2/x/blobs/short", 1 << 20);
  REQUIRE_FALSE(g.r.ok());
  CHECK(g.r.status().code() == Code::kUpstreamUnavailable);
  CHECK(g.body == std::string(5000, 'x'));
}

TEST_CASE("oci: a caller's space that gives no room abandons the GET; chunked bodies go through pieces") {
  const std::string body = portcullis::testing::Pattern(200 * 1000, 5);
  ScriptServer srv([&](int, const std::string& req) {
    if (req.find("/chunked ") != std::string::npos) {
      return Reply{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"};
    }
    return Reply{Ok(body)};
  });
  RegistryClient client(*ParseUrl(srv.url()), std::nullopt, Options(10));
  GotInPlace abandoned = StreamInPlace(client, "/v2/x/blobs/a", 1000, /*abandon_after=*/3);
  CHECK(abandoned.body == body.substr(0, abandoned.body.size()));
  CHECK(abandoned.body.size() <= 3000);  // three spaces of 1,000 bytes, then none
  // The connection with the rest of the body unread is not reused.
  GotInPlace whole = StreamInPlace(client, "/v2/x/blobs/a", 1 << 20);
  REQUIRE_MESSAGE(whole.r.ok(), whole.r.status().ToString());
  CHECK(whole.body == body);
  CHECK(srv.connections() == 2);
  GotInPlace chunked = StreamInPlace(client, "/v2/x/blobs/chunked", 1 << 20);
  REQUIRE_MESSAGE(chunked.r.ok(), chunked.r.status().ToString());
  CHECK(chunked.body == "hello");
  CHECK(chunked.in_place == 0);
  CHECK(chunked.spaces == 0);
}

TEST_CASE("oci: a pooled connection the upstream closed is replaced, once") {
  // Keep-alive answers, but the server closes each connection after one.
  ScriptServer srv([&](int, const std::string&) { return Reply{Ok("fresh"), true}; });
  RegistryClient client(*ParseUrl(srv.url()), std::nullopt, Options(10));
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    std::this_thread::sleep_for(50ms);  // the close reaches the pooled socket
    Got g = StreamAll(client, Get("/v2/x/blobs/a"));
    REQUIRE_MESSAGE(g.r.ok(), g.r.status().ToString());
    CHECK(g.body == "fresh");
  }
  CHECK(srv.connections() == 3);
}

TEST_CASE("oci: a streamed GET keeps a redirect's Location as sent") {
  // Pre-signed storage URLs sign their query: "%2B" must reach the store as
  // "%2B", not decoded to "+" nor encoded again to "%252B".
  const std::string location = "/data?sig=a%2Bb%2F%3D&x=1";
  ScriptServer srv([&](int, const std::string& req) {
    if (req.rfind("GET /v2/", 0) == 0) {
      return Reply{"HTTP/1.1 307 Temporary Redirect\r\nLocation: " + location + "\r\nContent-Length: 0\r\n\r\n"};
    }
    return Reply{Ok("stored")};
  });
  RegistryClient client(*ParseUrl(srv.url()), std::nullopt, Options(10));
  Got g = StreamAll(client, Get("/v2/x/blobs/r"));
  REQUIRE_MESSAGE(g.r.ok(), g.r.status().ToString());
  CHECK(g.body == "stored");
  auto targets = srv.targets();
  REQUIRE(targets.size() == 2);
  CHECK(targets[1] == location);
}

TEST_CASE("oci: a streamed GET keeps a small error body and refuses a large one") {
  const std::string big(internal::kStreamErrorBody + 1, 'x');
  ScriptServer srv([&](int, const std::string& req) {
    const std::string status = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: ";
    if (req.find("/small ") != std::string::npos) return Reply{status + "6\r\n\r\noh no!"};
    return Reply{status + std::to_string(big.size()) + "\r\n\r\n" + big};
  });
  RegistryClient client(*ParseUrl(srv.url()), std::nullopt, Options(10));
  Got small = StreamAll(client, Get("/v2/x/blobs/small"));
  REQUIRE_MESSAGE(small.r.ok(), small.r.status().ToString());
  CHECK(small.r->status == 500);
  CHECK(small.r->body == "oh no!");
  CHECK(small.pieces.empty());
  Got large = StreamAll(client, Get("/v2/x/blobs/large"));
  REQUIRE_FALSE(large.r.ok());
  CHECK(large.r.status().code() == Code::kSizeInvalid);
  CHECK(large.pieces.empty());
}

// Headers and the first bytes of a long body, then silence.
Reply Stall(int, const std::string&) {
  Reply r;
  r.bytes = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789";
  r.stall = true;
  return r;
}

TEST_CASE("oci: a streamed GET from a stalled upstream ends at its read timeout") {
  ScriptServer srv(Stall);
  RegistryClient client(*ParseUrl(srv.url()), std::nullopt, Options(1));
  const auto start = Clock::now();
  Got g = StreamAll(client, Get("/v2/x/blobs/stall"));
  REQUIRE_FALSE(g.r.ok());
  CHECK(g.r.status().code() == Code::kUpstreamUnavailable);
  CHECK(g.r.status().message().find("timed out") != std::string::npos);
  CHECK(g.body == "0123456789");
  CHECK(Clock::now() - start < 20s);  // a hang guard, not a speed test
}

TEST_CASE("oci: Cancel ends a streamed GET blocked on a stalled upstream") {
  ScriptServer srv(Stall);
  RegistryClient client(*ParseUrl(srv.url()), std::nullopt, Options(60));
  auto cancel = std::make_shared<StreamCancel>();
  HttpRequest req = Get("/v2/x/blobs/stall");
  req.cancel = cancel;
  std::atomic<bool> first_bytes{false};
  std::thread canceller([&] {
    for (int i = 0; i < 500 && !first_bytes; ++i) std::this_thread::sleep_for(10ms);
    std::this_thread::sleep_for(100ms);  // the fetch is now blocked in its next read
    cancel->Cancel();
  });
  const auto start = Clock::now();
  auto r = client.Stream(
      req, [](int, const Headers&) { return true; },
      [&](const char*, size_t) {
        first_bytes = true;
        return true;
      });
  canceller.join();
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kUpstreamUnavailable);
  CHECK(r.status().message().find("cancelled") != std::string::npos);
  CHECK(first_bytes);
  CHECK(Clock::now() - start < 30s);  // well before the 60 s read timeout
  // A cancelled request carries the cancel to every later one at once.
  auto again = client.Stream(req, [](int, const Headers&) { return true; }, [](const char*, size_t) { return true; });
  REQUIRE_FALSE(again.ok());
  CHECK(again.status().message().find("cancelled") != std::string::npos);
}

}  // namespace
