// Tests of the fetch limits (review M6), written as attacks by a hostile
// upstream or hostile clients: a body trickled (or stalled) forever, fetches
// abandoned by clients that hang up after the headers until every slot is
// held, a Content-Length or a chunked body beyond the size bound, and bytes in
// flight that the cache bound did not count. The upstream is a raw socket
// server on 127.0.0.1 that can stall, trickle, or stream chunks forever.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proxy/blob_fetch.h"
#include "proxy/fake_registry_test_util.h"
#include "proxy/maintenance.h"
#include "proxy/store_test_util.h"
#include "tests/test_util.h"

namespace {

using portcullis::Code;
using portcullis::oci::Digest;
using portcullis::proxy::BlobFetch;
using portcullis::proxy::FetchLimits;
using portcullis::proxy::FetchTable;
using portcullis::proxy::FetchWindow;
using portcullis::proxy::Maintenance;
using portcullis::proxy::Store;
using portcullis::proxy::testing::ClientFor;
using portcullis::proxy::testing::FakeBlob;
using portcullis::proxy::testing::FakeRegistry;
using portcullis::testing::Pattern;
using portcullis::testing::TempDir;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using RR = BlobFetch::ReadResult;

constexpr uint64_t kChunk = 4096;

std::shared_ptr<Store> OpenStore(const TempDir& dir) {
  return std::shared_ptr<Store>(portcullis::proxy::testing::OpenStore(dir.path.string()));
}

// A hostile upstream: every connection gets `head`, then `piece` every
// `interval` (an empty piece: nothing more, a stall) until the proxy closes
// the connection or the server stops. Counts the connections the proxy closed.
class TrickleServer {
 public:
  TrickleServer(std::string head, std::string piece, std::chrono::milliseconds interval)
      : head_(std::move(head)), piece_(std::move(piece)), interval_(interval) {
    fd_ = portcullis::testing::ListenLoopback(64, &port_);
    REQUIRE(fd_ >= 0);
    accept_ = std::thread([this] { AcceptLoop(); });
  }
  ~TrickleServer() {
    stop_ = true;
    accept_.join();
    std::lock_guard<std::mutex> l(mu_);
    for (auto& t : conns_) t.join();
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Waits until `n` connections were closed by the proxy, up to `wait`.
  bool WaitClosed(int n, std::chrono::milliseconds wait) const {
    auto deadline = Clock::now() + wait;
    while (closed.load() < n && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
    return closed.load() >= n;
  }
  std::atomic<int> requests{0};
  std::atomic<int> closed{0};

 private:
  void AcceptLoop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::lock_guard<std::mutex> l(mu_);
      if (conns_.size() >= 64) {  // bounded: a test never needs more
        ::close(c);
        continue;
      }
      conns_.emplace_back([this, c] { Serve(c); });
    }
  }
  void Serve(int c) {
    std::string req;
    char buf[4096];
    auto head_deadline = Clock::now() + 5s;
    while (req.find("\r\n\r\n") == std::string::npos && Clock::now() < head_deadline && !stop_) {
      pollfd cp{c, POLLIN, 0};
      if (::poll(&cp, 1, 20) <= 0) continue;
      ssize_t n = ::recv(c, buf, sizeof(buf), 0);
      if (n <= 0) break;
      req.append(buf, static_cast<size_t>(n));
    }
    bool ok = req.find("\r\n\r\n") != std::string::npos && Send(c, head_);
    if (ok) ++requests;
    auto next = Clock::now() + interval_;
    while (ok && !stop_) {
      pollfd cp{c, POLLIN, 0};
      if (::poll(&cp, 1, 10) > 0) {  // the proxy closed (or shut down) its end
        if (::recv(c, buf, sizeof(buf), 0) <= 0) {
          ++closed;
          break;
        }
      }
      if (!piece_.empty() && Clock::now() >= next) {
        if (!Send(c, piece_)) {
          ++closed;
          break;
        }
        next += interval_;
      }
    }
    ::close(c);
  }
  static bool Send(int c, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(c, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  std::string head_, piece_;
  std::chrono::milliseconds interval_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accept_;
  std::mutex mu_;
  std::vector<std::thread> conns_;
};

const char* kHugeHead =
    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000000000\r\n\r\n";

Digest DigestN(int i) { return Digest::Sha256Of("blob " + std::to_string(i)); }

struct IdleAtExit {
  FetchTable& table;
  ~IdleAtExit() { table.WaitIdle(Clock::now() + 15s); }
};

bool HasMeta(Store& st, const Digest& d) {
  auto m = st.GetBlobMeta(d);
  REQUIRE(m.ok());
  return m->has_value();
}

// Reads until kEnd or kFailed, up to `wait`; the last result (kTimeout when neither came).
RR ReadToEnd(BlobFetch& f, std::chrono::milliseconds wait, std::string* data) {
  auto deadline = Clock::now() + wait;
  while (Clock::now() < deadline) {
    RR r = f.Read(data->size(), 1 << 16, UINT64_MAX, data, 50ms);
    if (r == RR::kEnd || r == RR::kFailed) return r;
  }
  return RR::kTimeout;
}

TEST_CASE("fetch limits: an upstream trickling a huge body is cut at the deadline; nothing cached, slot freed") {
  TempDir dir;
  auto store = OpenStore(dir);
  // One byte every 50 ms of a 1e12-byte body (review M6's repro, faster).
  TrickleServer up(kHugeHead, "x", 50ms);
  FetchLimits limits;
  limits.deadline = 700ms;
  FetchTable table(store, kChunk, 1, FetchWindow{}, limits);
  IdleAtExit idle{table};
  bool started = false;
  const auto t0 = Clock::now();
  auto f = table.Join(DigestN(1), ClientFor(up.url()), "r", &started, nullptr);
  REQUIRE(f.ok());
  int64_t size = 0;
  REQUIRE(f.value()->WaitForHeaders(5s, &size).ok());
  CHECK(size == 1000000000000);
  std::string got;
  CHECK(ReadToEnd(*f.value(), 6s, &got) == RR::kFailed);  // the reader fails, never completes
  CHECK(Clock::now() - t0 < 4s);
  CHECK(f.value()->failure().message().find("deadline") != std::string::npos);
  REQUIRE(table.WaitIdle(Clock::now() + 5s));
  CHECK(table.inflight() == 0);
  CHECK_FALSE(HasMeta(*store, DigestN(1)));  // nothing of it stays
  CHECK(store->Stats().pending_bytes == 0);
  CHECK(up.WaitClosed(1, 3s));  // the upstream connection was closed
}

TEST_CASE("fetch limits: an upstream that stalls after the headers is cut at the deadline, not the read timeout") {
  TempDir dir;
  auto store = OpenStore(dir);
  TrickleServer up(kHugeHead, "", 1s);  // headers, then nothing at all
  FetchLimits limits;
  limits.deadline = 500ms;
  FetchTable table(store, kChunk, 1, FetchWindow{}, limits);
  IdleAtExit idle{table};
  bool started = false;
  const auto t0 = Clock::now();
  auto f = table.Join(DigestN(2), ClientFor(up.url()), "r", &started, nullptr);  // read timeout 10 s
  REQUIRE(f.ok());
  std::string got;
  CHECK(ReadToEnd(*f.value(), 8s, &got) == RR::kFailed);
  CHECK(Clock::now() - t0 < 4s);  // well before the client's 10 s read timeout
  REQUIRE(table.WaitIdle(Clock::now() + 5s));
  CHECK(up.WaitClosed(1, 3s));
  // The slot is free: another fetch starts.
  auto g = table.Join(DigestN(3), ClientFor(up.url()), "r", &started, nullptr);
  CHECK(g.ok());
  CHECK(started);
}

TEST_CASE("fetch limits: clients that hang up after the headers cannot hold every slot (review M6)") {
  TempDir dir;
  auto store = OpenStore(dir);
  TrickleServer up(kHugeHead, "x", 50ms);
  FetchTable table(store, kChunk, 3);
  IdleAtExit idle{table};
  auto client = ClientFor(up.url());
  bool started = false;
  // Three clients start three slow fetches and hang up after the headers.
  for (int i = 10; i < 13; ++i) {
    auto f = table.Join(DigestN(i), client, "r", &started, nullptr);
    REQUIRE(f.ok());
    int64_t size = 0;
    REQUIRE(f.value()->WaitForHeaders(5s, &size).ok());
    CHECK(f.value()->readers() == 1);
    std::this_thread::sleep_for(5ms);  // distinct idle times
  }  // every reader gone
  CHECK(table.inflight() == 3);
  // A new client's cold pull still gets a slot: the fetch abandoned first is cancelled.
  auto fresh = table.Join(DigestN(20), client, "r", &started, nullptr);
  REQUIRE_MESSAGE(fresh.ok(), fresh.status().ToString());
  CHECK(started);
  CHECK(table.cancelled_abandoned == 1);
  CHECK(up.WaitClosed(1, 3s));  // its upstream connection was closed
  auto deadline = Clock::now() + 5s;
  while (table.Running(DigestN(10)) && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
  CHECK_FALSE(table.Running(DigestN(10)));
  CHECK_FALSE(HasMeta(*store, DigestN(10)));  // its chunks dropped
  CHECK(table.Running(DigestN(11)));  // the others go on
  CHECK(table.Running(DigestN(12)));
  // Fetches with a reader (a client, or a prefetch waiting) are never cancelled.
  std::vector<std::shared_ptr<BlobFetch>> held;
  for (int i = 21; i < 23; ++i) {
    auto f = table.Join(DigestN(i), client, "r", &started, nullptr);
    REQUIRE(f.ok());
    held.push_back(*f);
  }
  CHECK(table.cancelled_abandoned == 3);  // 11 and 12 made room for 21 and 22
  auto refused = table.Join(DigestN(30), client, "r", &started, nullptr);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == Code::kTooManyRequests);
  for (auto& f : held) CHECK_FALSE(f->cancelled());
  CHECK_FALSE(fresh.value()->cancelled());
  // A joiner's pointer counts as a reader too; dropping both leaves none.
  auto joined = table.Join(DigestN(20), client, "r", &started, nullptr);
  REQUIRE(joined.ok());
  CHECK_FALSE(started);
  CHECK(joined.value()->readers() == 2);
  for (auto& f : held) f->Cancel(portcullis::Status::UpstreamUnavailable("test over"));
  fresh.value()->Cancel(portcullis::Status::UpstreamUnavailable("test over"));
}

TEST_CASE("fetch limits: a Content-Length over the bound is refused before any byte is written") {
  TempDir dir;
  auto store = OpenStore(dir);
  TrickleServer up(kHugeHead, "x", 50ms);
  FetchLimits limits;
  limits.max_blob_bytes = 1 << 20;
  FetchTable table(store, kChunk, 2, FetchWindow{}, limits);
  IdleAtExit idle{table};
  bool started = false;
  auto f = table.Join(DigestN(40), ClientFor(up.url()), "r", &started, nullptr);
  REQUIRE(f.ok());
  int64_t size = 0;
  portcullis::Status st = f.value()->WaitForHeaders(5s, &size);
  CHECK(st.code() == Code::kLimitExceeded);
  CHECK(st.message().find("max_blob_bytes") != std::string::npos);
  REQUIRE(table.WaitIdle(Clock::now() + 5s));
  CHECK_FALSE(HasMeta(*store, DigestN(40)));  // not even a pending record
  CHECK(store->Stats().pending_bytes == 0);
  CHECK(up.WaitClosed(1, 3s));
}

TEST_CASE("fetch limits: a chunked body growing past the bound fails the fetch and leaves nothing") {
  TempDir dir;
  auto store = OpenStore(dir);
  // Chunked, 4 KiB of zeros per chunk, forever (review M6's disk variant).
  const std::string piece = "1000\r\n" + std::string(4096, '\0') + "\r\n";
  TrickleServer up("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
                   piece, 1ms);
  FetchLimits limits;
  limits.max_blob_bytes = 64 * 1024;
  FetchTable table(store, kChunk, 2, FetchWindow{}, limits);
  IdleAtExit idle{table};
  bool started = false;
  auto f = table.Join(DigestN(41), ClientFor(up.url()), "r", &started, nullptr);
  REQUIRE(f.ok());
  std::string got;
  CHECK(ReadToEnd(*f.value(), 8s, &got) == RR::kFailed);
  CHECK(got.size() <= 64 * 1024);
  CHECK(f.value()->failure().code() == Code::kLimitExceeded);
  REQUIRE(table.WaitIdle(Clock::now() + 5s));
  CHECK_FALSE(HasMeta(*store, DigestN(41)));
  CHECK(store->Stats().pending_bytes == 0);
}

TEST_CASE("fetch limits: bytes in flight count against the cache bound, so eviction makes room ahead") {
  TempDir dir;
  auto store = OpenStore(dir);
  // A cached blob of 600 KiB, fetched from a well-behaved upstream.
  FakeRegistry good;
  const std::string body = Pattern(600 * 1024, 3);
  const Digest cached = Digest::Sha256Of(body);
  FakeBlob b;
  b.body = body;
  good.SetBlob("r", cached, b);
  FetchTable table(store, kChunk, 4);
  IdleAtExit idle{table};
  bool started = false;
  {
    auto f = table.Join(cached, ClientFor(good.url()), "r", &started, nullptr);
    REQUIRE(f.ok());
    REQUIRE(f.value()->WaitDone(10s));
  }
  REQUIRE(table.WaitIdle(Clock::now() + 5s));
  CHECK(store->Stats().pending_bytes == 0);
  // Another fetch announces 600 KiB and stalls: 1.2 MiB counted against a 1 MiB bound.
  TrickleServer slow("HTTP/1.1 200 OK\r\nContent-Length: 614400\r\n\r\n", "", 1s);
  auto f = table.Join(DigestN(50), ClientFor(slow.url()), "r", &started, nullptr);
  REQUIRE(f.ok());
  int64_t size = 0;
  REQUIRE(f.value()->WaitForHeaders(5s, &size).ok());
  CHECK(store->Stats().pending_bytes == 614400);
  Maintenance m(store.get(), &table, 1 << 20);
  auto n = m.EvictIfNeeded();
  REQUIRE(n.ok());
  CHECK(*n == 1);  // the cached blob made room for the one in flight
  CHECK_FALSE(HasMeta(*store, cached));
  f.value()->Cancel(portcullis::Status::UpstreamUnavailable("test over"));
  REQUIRE(table.WaitIdle(Clock::now() + 5s));
  CHECK(store->Stats().pending_bytes == 0);
}

}  // namespace

TEST_CASE("fetch limits: a slow upstream's fetch is not joined by clients of another upstream (review M6)") {
  TempDir dir;
  auto store = OpenStore(dir);
  const std::string body = Pattern(kChunk * 5 + 123, 9);
  const Digest d = Digest::Sha256Of(body);
  // "slow.test" answers the right length, then stalls; "good.test" is honest.
  TrickleServer slow("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n", "", 1s);
  FakeRegistry good;
  FakeBlob b;
  b.body = body;
  good.SetBlob("r", d, b);
  FetchTable table(store, kChunk, 4);
  IdleAtExit idle{table};
  bool started = false;
  auto stalled = table.Join("slow.test", d, ClientFor(slow.url()), "r", &started, nullptr);
  REQUIRE(stalled.ok());
  REQUIRE(started);
  int64_t size = 0;
  REQUIRE(stalled.value()->WaitForHeaders(5s, &size).ok());
  CHECK_FALSE(stalled.value()->serve_through());
  // A client of good.test gets its own fetch, at good.test's pace, with the right bytes.
  const auto t0 = Clock::now();
  auto own = table.Join("good.test", d, ClientFor(good.url()), "r", &started, nullptr);
  REQUIRE(own.ok());
  CHECK(started);  // not the stalled one
  CHECK(own.value()->serve_through());  // slow.test's fetch owns the record: nothing written twice
  std::string got;
  CHECK(ReadToEnd(*own.value(), 8s, &got) == RR::kEnd);
  CHECK(got == body);
  CHECK(Clock::now() - t0 < 4s);
  CHECK(own.value()->WaitDone(5s));
  // It wrote nothing: the digest's record is still slow.test's pending one.
  auto meta = store->GetBlobMeta(d);
  REQUIRE(meta.ok());
  REQUIRE(meta->has_value());
  CHECK_FALSE((*meta)->complete);
  // A second client of slow.test joins slow.test's fetch, not good.test's.
  auto joined = table.Join("slow.test", d, ClientFor(slow.url()), "r", &started, nullptr);
  REQUIRE(joined.ok());
  CHECK_FALSE(started);
  CHECK(joined.value().get() == stalled.value().get());
  stalled.value()->Cancel(portcullis::Status::UpstreamUnavailable("test over"));
  REQUIRE(table.WaitIdle(Clock::now() + 5s));
  CHECK_FALSE(HasMeta(*store, d));  // the stalled fetch dropped its record; nothing else was written
  CHECK_FALSE(table.Running(d));
  // Once nothing runs, good.test's next fetch writes and commits as usual.
  auto again = table.Join("good.test", d, ClientFor(good.url()), "r", &started, nullptr);
  REQUIRE(again.ok());
  CHECK(started);
  CHECK_FALSE(again.value()->serve_through());
  CHECK(again.value()->WaitDone(10s));
  REQUIRE(table.WaitIdle(Clock::now() + 5s));
  meta = store->GetBlobMeta(d);
  REQUIRE(meta.ok());
  REQUIRE(meta->has_value());
  CHECK((*meta)->complete);
}
