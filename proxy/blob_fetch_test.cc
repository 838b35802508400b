// Tests for proxy/blob_fetch.h: coalesced, streaming, digest-checked blob
// fetches from a fake upstream (FakeRegistry, an httplib::Server on 127.0.0.1,
// or a raw socket server for malformed answers) into a real RocksDB Store.
#include "proxy/blob_fetch.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "proxy/fake_registry_test_util.h"
#include "proxy/store_test_util.h"
#include "tests/test_util.h"

namespace {

using portcullis::Code;
using portcullis::oci::ClientOptions;
using portcullis::oci::Digest;
using portcullis::oci::ParseUrl;
using portcullis::oci::RegistryClient;
using portcullis::proxy::BlobFetch;
using portcullis::proxy::FetchTable;
using portcullis::proxy::Store;
using portcullis::proxy::testing::FakeBlob;
using portcullis::proxy::testing::FakeRegistry;
using portcullis::proxy::testing::Gate;
using portcullis::testing::Diff;
using portcullis::testing::Pattern;
using portcullis::testing::TempDir;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using RR = BlobFetch::ReadResult;

constexpr uint64_t kChunk = 4096;


std::shared_ptr<Store> OpenStore(const TempDir& dir) {
  return std::shared_ptr<Store>(portcullis::proxy::testing::OpenStore(dir.path.string()));
}

using portcullis::proxy::testing::ClientFor;

// An upstream blob sent `piece` bytes per write, whose bytes from `gate_at`
// on wait until `gate` opens.
FakeBlob GatedBlob(const std::string& body, size_t gate_at, std::shared_ptr<Gate> gate, size_t piece = 1000) {
  FakeBlob b;
  b.body = body;
  b.piece = piece;
  b.gate_at = gate_at;
  b.gate = std::move(gate);
  return b;
}

struct Outcome {
  RR last = RR::kTimeout;
  std::string data;
};

// Reads from `offset` until kEnd / kFailed (or a 20 s deadline: kTimeout).
// Stops early once `stop_after` bytes were read (result kData then).
Outcome ReadAll(BlobFetch& f, uint64_t hold_at, uint64_t offset = 0, size_t max = 1500,
                size_t stop_after = SIZE_MAX) {
  Outcome o;
  auto deadline = SteadyClock::now() + 20s;
  while (SteadyClock::now() < deadline) {
    RR r = f.Read(offset + o.data.size(), max, hold_at, &o.data, 200ms);
    o.last = r;
    if (r == RR::kData) {
      if (o.data.size() >= stop_after) return o;
      continue;
    }
    if (r == RR::kTimeout) continue;
    return o;
  }
  o.last = RR::kTimeout;
  return o;
}

// Waits for the table's fetch threads at scope exit (they use the table), so
// a failed REQUIRE does not leave one running against a destroyed table.
struct IdleAtExit {
  FetchTable& table;
  ~IdleAtExit() { table.WaitIdle(SteadyClock::now() + 15s); }
};

bool HasChunk(Store& st, const Digest& d, uint64_t i) {
  rocksdb::PinnableSlice s;
  return st.ReadChunk(d, i, &s).ok();
}

std::optional<portcullis::proxy::BlobMeta> Meta(Store& st, const Digest& d) {
  auto m = st.GetBlobMeta(d);
  REQUIRE(m.ok());
  return *m;
}

// Reassembles a committed blob from its chunks.
std::string ReadBack(Store& st, const Digest& d) {
  auto m = Meta(st, d);
  REQUIRE(m.has_value());
  REQUIRE(m->complete);
  std::string out;
  for (uint64_t i = 0; out.size() < m->size; ++i) {
    rocksdb::PinnableSlice s;
    auto status = st.ReadChunk(d, i, &s);
    REQUIRE_MESSAGE(status.ok(), status.ToString());
    out.append(s.data(), s.size());
  }
  return out;
}

TEST_CASE("proxy: fetch coalesces two joins into one upstream GET and commits") {
  TempDir dir;
  auto store = OpenStore(dir);
  FakeRegistry up;
  const std::string body = Pattern(kChunk * 3 + 777, 1);
  Digest d = Digest::Sha256Of(body);
  auto gate = std::make_shared<Gate>();
  up.SetBlob("r", d, GatedBlob(body, 5000, gate));  // hold the body mid-way until both readers joined
  auto client = ClientFor(up.url());
  {
    FetchTable table(store, kChunk, 8);
    IdleAtExit idle_at_exit{table};
    std::atomic<int> done_calls{0};
    std::atomic<bool> done_committed{false};
    auto on_done = [&](const BlobFetch& f) {
      ++done_calls;
      done_committed = f.committed();
    };
    bool started1 = false, started2 = false;
    auto f1 = table.Join(d, client, "r", &started1, on_done);
    REQUIRE(f1.ok());
    CHECK(started1);
    int64_t size = 0;
    REQUIRE(f1.value()->WaitForHeaders(5s, &size).ok());
    CHECK(size == static_cast<int64_t>(body.size()));
    auto f2 = table.Join(d, client, "r", &started2, on_done);
    REQUIRE(f2.ok());
    CHECK_FALSE(started2);
    CHECK(f1.value().get() == f2.value().get());
    CHECK(table.inflight() == 1);

    // While the upstream is held, a reader gets no more than what arrived.
    Outcome partial;
    RR r = f1.value()->Read(0, SIZE_MAX, body.size() - 1, &partial.data, 2s);
    CHECK(r == RR::kData);
    CHECK(partial.data.size() <= 5000);
    CHECK(Diff(partial.data, body.substr(0, partial.data.size())) == "");

    Outcome o1, o2, o3;
    std::thread t1([&] { o1 = ReadAll(*f1.value(), body.size() - 1); });
    std::thread t2([&] { o2 = ReadAll(*f2.value(), body.size() - 1, 0, 333); });
    // A range-style reader starting inside the second chunk.
    std::thread t3([&] { o3 = ReadAll(*f2.value(), body.size() - 1, kChunk + 10, 4000); });
    gate->Open();
    t1.join();
    t2.join();
    t3.join();
    CHECK(o1.last == RR::kEnd);
    CHECK(o2.last == RR::kEnd);
    CHECK(o3.last == RR::kEnd);
    CHECK(o1.data.size() == body.size());
    CHECK(Diff(o1.data, body) == "");
    CHECK(Diff(o2.data, body) == "");
    CHECK(Diff(o3.data, body.substr(kChunk + 10)) == "");
    REQUIRE(table.WaitIdle(SteadyClock::now() + 10s));
    CHECK(table.inflight() == 0);
    CHECK(up.blob_gets == 1);
    CHECK(done_calls == 1);
    CHECK(done_committed);
    CHECK(f1.value()->committed());
    CHECK(f1.value()->size_committed() == body.size());

    // A reader arriving after the commit reads everything, from the store.
    Outcome late = ReadAll(*f1.value(), body.size() - 1, 0, 5000);
    CHECK(late.last == RR::kEnd);
    CHECK(Diff(late.data, body) == "");
  }
  auto m = Meta(*store, d);
  REQUIRE(m.has_value());
  CHECK(m->complete);
  CHECK(m->size == body.size());
  CHECK(m->chunk_bytes == kChunk);
  CHECK(Diff(ReadBack(*store, d), body) == "");
}

TEST_CASE("proxy: a piece read without a copy stays whole after the fetch freed its window and ended") {
  // ReadPiece shares the window's chunk (or the store's read) with the engine,
  // which writes it to the client later: the piece, not the fetch, must keep it.
  TempDir dir;
  auto store = OpenStore(dir);
  FakeRegistry up;
  const std::string body = Pattern(kChunk * 3 + 777, 7);
  Digest d = Digest::Sha256Of(body);
  auto gate = std::make_shared<Gate>();
  up.SetBlob("r", d, GatedBlob(body, kChunk + 100, gate));  // hold the body in the second chunk
  auto client = ClientFor(up.url());
  portcullis::proxy::BodyPiece from_window, from_store;
  {
    FetchTable table(store, kChunk, 8);
    IdleAtExit idle_at_exit{table};
    bool started = false;
    auto f = table.Join(d, client, "r", &started, nullptr);
    REQUIRE(f.ok());
    // The first chunk, complete, while the upstream is held: from the window.
    auto deadline = SteadyClock::now() + 10s;
    while (from_window.size < kChunk && SteadyClock::now() < deadline) {
      from_window.Reset();
      REQUIRE(f.value()->ReadPiece(0, SIZE_MAX, body.size() - 1, &from_window, 200ms) != RR::kFailed);
    }
    REQUIRE(from_window.size == kChunk);
    CHECK(f.value()->window_first_for_test() == 0);  // it was read from the window (first_ only grows)
    gate->Open();
    REQUIRE(table.WaitIdle(SteadyClock::now() + 10s));
    REQUIRE(f.value()->committed());
    // Committed: the window is gone, a reader reads the store.
    REQUIRE(f.value()->ReadPiece(kChunk, SIZE_MAX, body.size() - 1, &from_store, 1s) == RR::kData);
  }
  // The fetch and its table are gone; the pieces still hold their bytes.
  CHECK(Diff(std::string(from_window.data, from_window.size), body.substr(0, kChunk)) == "");
  REQUIRE(from_store.size == kChunk);
  CHECK(Diff(std::string(from_store.data, from_store.size), body.substr(kChunk, kChunk)) == "");
}

TEST_CASE("proxy: fetch of a body that is a multiple of the chunk size") {
  TempDir dir;
  auto store = OpenStore(dir);
  FakeRegistry up;
  const std::string body = Pattern(kChunk * 3, 2);
  Digest d = Digest::Sha256Of(body);
  FakeBlob b;
  b.body = body;
  b.piece = 4096;
  up.SetBlob("r", d, b);
  FetchTable table(store, kChunk, 8);
  IdleAtExit idle_at_exit{table};
  bool started = false;
  auto f = table.Join(d, ClientFor(up.url()), "r", &started, nullptr);
  REQUIRE(f.ok());
  Outcome o = ReadAll(*f.value(), body.size() - 1);
  CHECK(o.last == RR::kEnd);
  CHECK(Diff(o.data, body) == "");
  REQUIRE(table.WaitIdle(SteadyClock::now() + 10s));
  CHECK(Diff(ReadBack(*store, d), body) == "");
  CHECK_FALSE(HasChunk(*store, d, 3));
}

TEST_CASE("proxy: fetch with an unknown size withholds the last byte until committed") {
  TempDir dir;
  auto store = OpenStore(dir);
  FakeRegistry up;
  const std::string body = Pattern(kChunk + 300, 3);
  Digest d = Digest::Sha256Of(body);
  auto gate = std::make_shared<Gate>();
  FakeBlob b;
  b.body = body;
  b.chunked = true;
  b.piece = 2000;
  b.gate_before_end = true;
  b.gate = gate;
  up.SetBlob("r", d, b);
  FetchTable table(store, kChunk, 8);
  IdleAtExit idle_at_exit{table};
  bool started = false;
  auto f = table.Join(d, ClientFor(up.url()), "r", &started, nullptr);
  REQUIRE(f.ok());
  int64_t size = 0;
  REQUIRE(f.value()->WaitForHeaders(5s, &size).ok());
  CHECK(size == -1);
  // Every byte has arrived but the body has not ended: one byte is held back.
  Outcome o;
  auto deadline = SteadyClock::now() + 10s;
  while (o.data.size() < body.size() - 1 && SteadyClock::now() < deadline) {
    f.value()->Read(o.data.size(), 100000, UINT64_MAX, &o.data, 100ms);
  }
  CHECK(o.data.size() == body.size() - 1);
  RR r = f.value()->Read(o.data.size(), 100000, UINT64_MAX, &o.data, 300ms);
  CHECK(r == RR::kTimeout);
  CHECK(o.data.size() == body.size() - 1);
  CHECK_FALSE(f.value()->committed());
  gate->Open();
  Outcome rest = ReadAll(*f.value(), UINT64_MAX, o.data.size());
  CHECK(rest.last == RR::kEnd);
  CHECK(Diff(o.data + rest.data, body) == "");
  REQUIRE(table.WaitIdle(SteadyClock::now() + 10s));
  CHECK(Diff(ReadBack(*store, d), body) == "");
}

TEST_CASE("proxy: fetch of a wrong body fails before the last byte and leaves nothing") {
  TempDir dir;
  auto store = OpenStore(dir);
  FakeRegistry up;
  const std::string good = Pattern(kChunk * 2 + 500, 4);
  Digest d = Digest::Sha256Of(good);
  std::string bad = good;
  bad[kChunk + 17] ^= 0x01;
  FakeBlob b;
  b.body = bad;
  b.piece = 700;
  up.SetBlob("r", d, b);
  auto client = ClientFor(up.url());
  FetchTable table(store, kChunk, 8);
  IdleAtExit idle_at_exit{table};
  std::atomic<bool> done_committed{true};
  bool started = false;
  auto f = table.Join(d, client, "r", &started,
                      [&](const BlobFetch& fetch) { done_committed = fetch.committed(); });
  REQUIRE(f.ok());
  CHECK(started);
  Outcome o = ReadAll(*f.value(), good.size() - 1, 0, 300);
  CHECK(o.last == RR::kFailed);
  CHECK(o.data.size() < good.size());
  CHECK(Diff(o.data, bad.substr(0, o.data.size())) == "");
  REQUIRE(table.WaitIdle(SteadyClock::now() + 10s));
  CHECK_FALSE(done_committed);
  CHECK_FALSE(f.value()->committed());
  CHECK(f.value()->failure().code() == Code::kDigestInvalid);
  // Reading again keeps failing.
  std::string more;
  CHECK(f.value()->Read(0, 10, good.size() - 1, &more, 100ms) == RR::kFailed);
  CHECK_FALSE(Meta(*store, d).has_value());
  for (uint64_t i = 0; i < 4; ++i) {
    CAPTURE(i);
    CHECK_FALSE(HasChunk(*store, d, i));
  }
  CHECK(up.blob_gets == 1);

  // A later Join starts a new fetch (which now gets the right bytes).
  b.body = good;
  up.SetBlob("r", d, b);
  bool started2 = false;
  auto f2 = table.Join(d, client, "r", &started2, nullptr);
  REQUIRE(f2.ok());
  CHECK(started2);
  CHECK(f2.value().get() != f.value().get());
  Outcome o2 = ReadAll(*f2.value(), good.size() - 1);
  CHECK(o2.last == RR::kEnd);
  CHECK(Diff(o2.data, good) == "");
  REQUIRE(table.WaitIdle(SteadyClock::now() + 10s));
  CHECK(up.blob_gets == 2);
  CHECK(Diff(ReadBack(*store, d), good) == "");
}

TEST_CASE("proxy: fetch after a failed one starts a new upstream GET") {
  TempDir dir;
  auto store = OpenStore(dir);
  FakeRegistry up;
  const std::string good = Pattern(3000, 5);
  Digest d = Digest::Sha256Of(good);
  std::string bad = good;
  bad.back() ^= 0x20;
  FakeBlob b;
  b.body = bad;
  up.SetBlob("r", d, b);
  auto client = ClientFor(up.url());
  FetchTable table(store, kChunk, 8);
  IdleAtExit idle_at_exit{table};
  bool started = false;
  auto f = table.Join(d, client, "r", &started, nullptr);
  REQUIRE(f.ok());
  CHECK(started);
  Outcome o = ReadAll(*f.value(), good.size() - 1);
  CHECK(o.last == RR::kFailed);
  CHECK(o.data.size() < good.size());
  REQUIRE(table.WaitIdle(SteadyClock::now() + 10s));
  bool started2 = false;
  auto f2 = table.Join(d, client, "r", &started2, nullptr);
  REQUIRE(f2.ok());
  CHECK(started2);
  Outcome o2 = ReadAll(*f2.value(), good.size() - 1);
  CHECK(o2.last == RR::kFailed);  // the upstream still lies
  REQUIRE(table.WaitIdle(SteadyClock::now() + 10s));
  CHECK(up.blob_gets == 2);
  CHECK_FALSE(Meta(*store, d).has_value());
  CHECK_FALSE(HasChunk(*store, d, 0));
}

TEST_CASE("proxy: fetch Join right after a failure starts a new fetch instead of joining the failed one") {
  TempDir dir;
  auto store = OpenStore(dir);
  FakeRegistry up;
  const std::string body = Pattern(3000, 15);
  Digest d = Digest::Sha256Of(body);
  FakeBlob broken;
  broken.status = 500;
  up.SetBlob("r", d, broken);
  auto client = ClientFor(up.url());
  FetchTable table(store, kChunk, 8);
  IdleAtExit idle_at_exit{table};
  // The first fetch's completion callback is slow (as a RocksDB write or a log
  // line can be): the fetch has failed but is still in the table meanwhile.
  auto slow_done = std::make_shared<Gate>();
  struct OpenAtExit {
    std::shared_ptr<Gate> g;
    ~OpenAtExit() { g->Open(); }
  } open_at_exit{slow_done};
  bool started = false;
  auto f1 = table.Join(d, client, "r", &started, [slow_done](const BlobFetch&) { slow_done->Wait(); });
  REQUIRE(f1.ok());
  int64_t size = 0;
  CHECK(f1.value()->WaitForHeaders(5s, &size).code() == Code::kUpstreamUnavailable);
  std::string out;
  REQUIRE(f1.value()->Read(0, 10, 0, &out, 1s) == RR::kFailed);

  // The upstream recovers; a client retries at once.
  FakeBlob fixed;
  fixed.body = body;
  up.SetBlob("r", d, fixed);
  bool started2 = false;
  auto f2 = table.Join(d, client, "r", &started2, nullptr);
  REQUIRE(f2.ok());
  CHECK(started2);
  CHECK(f2.value().get() != f1.value().get());
  CHECK(f2.value()->WaitForHeaders(5s, &size).ok());
  Outcome o = ReadAll(*f2.value(), body.size() - 1);
  CHECK(o.last == RR::kEnd);
  CHECK(Diff(o.data, body) == "");
  slow_done->Open();
  REQUIRE(table.WaitIdle(SteadyClock::now() + 10s));
}

TEST_CASE("proxy: fetch of a blob the upstream does not have is BLOB_UNKNOWN") {
  TempDir dir;
  auto store = OpenStore(dir);
  FakeRegistry up;
  Digest d = Digest::Sha256Of("absent");
  FetchTable table(store, kChunk, 8);
  IdleAtExit idle_at_exit{table};
  bool started = false;
  auto f = table.Join(d, ClientFor(up.url()), "r", &started, nullptr);
  REQUIRE(f.ok());
  CHECK(started);
  int64_t size = 0;
  auto st = f.value()->WaitForHeaders(5s, &size);
  CHECK(st.code() == Code::kBlobUnknown);
  std::string out;
  CHECK(f.value()->Read(0, 10, 0, &out, 1s) == RR::kFailed);
  CHECK(out.empty());
  REQUIRE(table.WaitIdle(SteadyClock::now() + 10s));
  CHECK(up.blob_gets == 1);
  CHECK_FALSE(Meta(*store, d).has_value());

  // Other upstream statuses map to their codes.
  Digest d2 = Digest::Sha256Of("limited");
  FakeBlob b;
  b.status = 429;
  up.SetBlob("r", d2, b);
  auto f2 = table.Join(d2, ClientFor(up.url()), "r", &started, nullptr);
  REQUIRE(f2.ok());
  CHECK(f2.value()->WaitForHeaders(5s, &size).code() == Code::kTooManyRequests);
  Digest d3 = Digest::Sha256Of("broken");
  b.status = 500;
  up.SetBlob("r", d3, b);
  auto f3 = table.Join(d3, ClientFor(up.url()), "r", &started, nullptr);
  REQUIRE(f3.ok());
  CHECK(f3.value()->WaitForHeaders(5s, &size).code() == Code::kUpstreamUnavailable);
  REQUIRE(table.WaitIdle(SteadyClock::now() + 10s));
  CHECK_FALSE(Meta(*store, d2).has_value());
  CHECK_FALSE(Meta(*store, d3).has_value());
}

TEST_CASE("proxy: fetch table bound gives TOOMANYREQUESTS") {
  TempDir dir;
  auto store = OpenStore(dir);
  FakeRegistry up;
  const std::string body1 = Pattern(6000, 6);
  const std::string body2 = Pattern(6000, 7);
  Digest d1 = Digest::Sha256Of(body1);
  Digest d2 = Digest::Sha256Of(body2);
  auto gate = std::make_shared<Gate>();
  FakeBlob b;
  b.body = body1;
  b.gate_at = 1000;
  b.gate = gate;
  up.SetBlob("r", d1, b);
  FakeBlob b2;
  b2.body = body2;
  up.SetBlob("r", d2, b2);
  auto client = ClientFor(up.url());
  FetchTable table(store, kChunk, 1);
  IdleAtExit idle_at_exit{table};
  bool started = false;
  auto f1 = table.Join(d1, client, "r", &started, nullptr);
  REQUIRE(f1.ok());
  CHECK(started);
  auto f2 = table.Join(d2, client, "r", &started, nullptr);
  CHECK_FALSE(f2.ok());
  CHECK(f2.status().code() == Code::kTooManyRequests);
  // Joining the running one is still fine.
  bool joined_started = true;
  auto f1b = table.Join(d1, client, "r", &joined_started, nullptr);
  REQUIRE(f1b.ok());
  CHECK_FALSE(joined_started);
  gate->Open();
  REQUIRE(table.WaitIdle(SteadyClock::now() + 10s));
  // Once the slot is free, the other digest may start.
  auto f3 = table.Join(d2, client, "r", &started, nullptr);
  REQUIRE(f3.ok());
  CHECK(started);
  Outcome o = ReadAll(*f3.value(), body2.size() - 1);
  CHECK(Diff(o.data, body2) == "");
  REQUIRE(table.WaitIdle(SteadyClock::now() + 10s));
  CHECK(up.blob_gets == 2);
  CHECK(Meta(*store, d1).has_value());
  CHECK(Meta(*store, d2).has_value());
}

TEST_CASE("proxy: fetch goes on when its reader stops early") {
  TempDir dir;
  auto store = OpenStore(dir);
  FakeRegistry up;
  const std::string body = Pattern(kChunk * 5 + 11, 8);
  Digest d = Digest::Sha256Of(body);
  auto gate = std::make_shared<Gate>();
  up.SetBlob("r", d, GatedBlob(body, 2048, gate, 512));
  std::atomic<bool> done_committed{false};
  std::atomic<int> done_calls{0};
  {
    FetchTable table(store, kChunk, 8);
    IdleAtExit idle_at_exit{table};
    {
      bool started = false;
      auto f = table.Join(d, ClientFor(up.url()), "r", &started, [&](const BlobFetch& fetch) {
        done_committed = fetch.committed();
        ++done_calls;
      });
      REQUIRE(f.ok());
      Outcome o = ReadAll(*f.value(), body.size() - 1, 0, 100, 1000);
      CHECK(o.last == RR::kData);
      CHECK(Diff(o.data, body.substr(0, o.data.size())) == "");
      CHECK_FALSE(f.value()->committed());
    }  // the reader lets go of the fetch
    gate->Open();
    REQUIRE(table.WaitIdle(SteadyClock::now() + 10s));
  }
  CHECK(done_calls == 1);
  CHECK(done_committed);
  CHECK(Diff(ReadBack(*store, d), body) == "");
}

// A raw TCP server that answers every connection with `response` and closes
// it, counting requests. For answers httplib::Server will not produce.
class RawServer {
 public:
  explicit RawServer(std::string response) : response_(std::move(response)) {
    fd_ = portcullis::testing::ListenLoopback(8, &port_);
    REQUIRE(fd_ >= 0);
    thread_ = std::thread([this] { Loop(); });
  }
  ~RawServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::atomic<int> requests{0};

 private:
  void Loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::string req;
      char buf[4096];
      auto deadline = SteadyClock::now() + 5s;
      while (req.find("\r\n\r\n") == std::string::npos && SteadyClock::now() < deadline) {
        pollfd cp{c, POLLIN, 0};
        if (::poll(&cp, 1, 50) <= 0) continue;
        ssize_t n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      if (req.find("\r\n\r\n") != std::string::npos) {
        ++requests;
        size_t off = 0;
        while (off < response_.size()) {
          ssize_t n = ::send(c, response_.data() + off, response_.size() - off, MSG_NOSIGNAL);
          if (n <= 0) break;
          off += static_cast<size_t>(n);
        }
      }
      ::shutdown(c, SHUT_RDWR);
      ::close(c);
    }
  }

  std::string response_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_CASE("proxy: fetch of a short body (connection closed early) fails and commits nothing") {
  TempDir dir;
  auto store = OpenStore(dir);
  const std::string body = Pattern(kChunk * 3, 9);
  Digest d = Digest::Sha256Of(body);
  // Declares the full length, sends a bit more than two chunks, then closes.
  const size_t sent = kChunk * 2 + 100;
  RawServer raw("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body.substr(0, sent));
  FetchTable table(store, kChunk, 8);
  IdleAtExit idle_at_exit{table};
  std::atomic<bool> done_committed{true};
  bool started = false;
  auto f = table.Join(d, ClientFor(raw.url()), "r", &started,
                      [&](const BlobFetch& fetch) { done_committed = fetch.committed(); });
  REQUIRE(f.ok());
  int64_t size = 0;
  REQUIRE(f.value()->WaitForHeaders(5s, &size).ok());
  CHECK(size == static_cast<int64_t>(body.size()));
  Outcome o = ReadAll(*f.value(), body.size() - 1, 0, 1000);
  CHECK(o.last == RR::kFailed);
  CHECK(o.data.size() <= sent);
  CHECK(Diff(o.data, body.substr(0, o.data.size())) == "");
  REQUIRE(table.WaitIdle(SteadyClock::now() + 10s));
  CHECK_FALSE(done_committed);
  CHECK_FALSE(f.value()->committed());
  CHECK(raw.requests >= 1);
  CHECK_FALSE(Meta(*store, d).has_value());
  for (uint64_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK_FALSE(HasChunk(*store, d, i));
  }
}

TEST_CASE("proxy: fetch of a body longer than the digest's bytes fails") {
  TempDir dir;
  auto store = OpenStore(dir);
  FakeRegistry up;
  const std::string good = Pattern(5000, 10);
  Digest d = Digest::Sha256Of(good);
  FakeBlob b;
  b.body = good + "extra";
  up.SetBlob("r", d, b);
  FetchTable table(store, kChunk, 8);
  IdleAtExit idle_at_exit{table};
  bool started = false;
  auto f = table.Join(d, ClientFor(up.url()), "r", &started, nullptr);
  REQUIRE(f.ok());
  int64_t size = 0;
  REQUIRE(f.value()->WaitForHeaders(5s, &size).ok());
  CHECK(size == static_cast<int64_t>(b.body.size()));
  Outcome o = ReadAll(*f.value(), static_cast<uint64_t>(size) - 1);
  CHECK(o.last == RR::kFailed);
  CHECK(o.data.size() < b.body.size());
  REQUIRE(table.WaitIdle(SteadyClock::now() + 10s));
  CHECK_FALSE(Meta(*store, d).has_value());
  CHECK_FALSE(HasChunk(*store, d, 0));
}

}  // namespace

// ---- The window: readers ahead of the store, the store behind them ----

// Polls `pred` every 10 ms for up to 10 s.
bool Eventually(const std::function<bool()>& pred) {
  auto deadline = SteadyClock::now() + 10s;
  while (SteadyClock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

TEST_CASE("proxy: fetch serves readers from its window while the store is behind, and waits at max_pending") {
  TempDir dir;
  auto store = OpenStore(dir);
  FakeRegistry up;
  const std::string body = Pattern(kChunk * 12 + 100, 21);
  Digest d = Digest::Sha256Of(body);
  FakeBlob b;
  b.body = body;
  b.piece = 1000;
  up.SetBlob("r", d, b);
  auto writer_gate = std::make_shared<Gate>();
  FetchTable table(store, kChunk, 8, portcullis::proxy::FetchWindow{2, 3, 0});
  // The store writer is held before its first chunk.
  table.set_before_write_for_test([writer_gate](uint64_t) { writer_gate->Wait(20s); });
  IdleAtExit idle_at_exit{table};
  struct OpenAtExit {  // a failed REQUIRE must not leave the writer held
    std::shared_ptr<Gate> g;
    ~OpenAtExit() { g->Open(); }
  } open_at_exit{writer_gate};
  bool started = false;
  auto f = table.Join(d, ClientFor(up.url()), "r", &started, nullptr);
  REQUIRE(f.ok());
  BlobFetch& fetch = *f.value();
  // Three chunks are readable though none is in the store.
  Outcome ahead = ReadAll(fetch, body.size() - 1, 0, 1500, 3 * kChunk);
  REQUIRE(ahead.last == RR::kData);
  CHECK(Diff(ahead.data, body.substr(0, ahead.data.size())) == "");
  CHECK(fetch.stored_chunks_for_test() == 0);
  CHECK_FALSE(HasChunk(*store, d, 0));
  // The fetch stops at max_pending (3) complete chunks the writer has not stored.
  REQUIRE(Eventually([&] { return fetch.size_committed() >= 3 * kChunk; }));
  std::this_thread::sleep_for(300ms);
  CHECK(fetch.size_committed() == 3 * kChunk);
  CHECK_FALSE(fetch.committed());
  writer_gate->Open();
  Outcome rest = ReadAll(fetch, body.size() - 1, ahead.data.size());
  CHECK(rest.last == RR::kEnd);
  CHECK(Diff(ahead.data + rest.data, body) == "");
  REQUIRE(table.WaitIdle(SteadyClock::now() + 10s));
  CHECK(fetch.committed());
  CHECK(fetch.window_first_for_test() == 13);  // the window is freed at commit
  CHECK(Diff(ReadBack(*store, d), body) == "");
  // A reader after the commit reads from the store.
  Outcome late = ReadAll(fetch, body.size() - 1, 0, 5000);
  CHECK(late.last == RR::kEnd);
  CHECK(Diff(late.data, body) == "");
}

TEST_CASE("proxy: fetch reader behind the window reads the chunks from the store") {
  TempDir dir;
  auto store = OpenStore(dir);
  FakeRegistry up;
  const std::string body = Pattern(kChunk * 10 + 5, 22);
  Digest d = Digest::Sha256Of(body);
  auto gate = std::make_shared<Gate>();
  up.SetBlob("r", d, GatedBlob(body, kChunk * 9, gate));  // the fetch is held after nine chunks
  FetchTable table(store, kChunk, 8, portcullis::proxy::FetchWindow{1, 2, 0});
  IdleAtExit idle_at_exit{table};
  struct OpenAtExit {
    std::shared_ptr<Gate> g;
    ~OpenAtExit() { g->Open(); }
  } open_at_exit{gate};
  bool started = false;
  auto f = table.Join(d, ClientFor(up.url()), "r", &started, nullptr);
  REQUIRE(f.ok());
  BlobFetch& fetch = *f.value();
  // Nine chunks arrive; eight go into the store and leave the window (it keeps one).
  REQUIRE(Eventually([&] { return fetch.stored_chunks_for_test() >= 8 && fetch.window_first_for_test() >= 8; }));
  CHECK_FALSE(fetch.committed());
  CHECK(HasChunk(*store, d, 0));
  // A reader that starts now (behind the window) gets the first chunks from the store.
  Outcome slow = ReadAll(fetch, body.size() - 1, 0, 3000, 9 * kChunk);
  REQUIRE(slow.last == RR::kData);
  CHECK(slow.data.size() == 9 * kChunk);
  CHECK(Diff(slow.data, body.substr(0, slow.data.size())) == "");
  gate->Open();
  Outcome rest = ReadAll(fetch, body.size() - 1, slow.data.size());
  CHECK(rest.last == RR::kEnd);
  CHECK(Diff(slow.data + rest.data, body) == "");
  REQUIRE(table.WaitIdle(SteadyClock::now() + 10s));
  CHECK(Diff(ReadBack(*store, d), body) == "");
}

TEST_CASE("proxy: fetch of a wrong body fails readers mid-window and no chunk is written after the drop") {
  TempDir dir;
  auto store = OpenStore(dir);
  FakeRegistry up;
  const std::string good = Pattern(kChunk * 6 + 50, 23);
  Digest d = Digest::Sha256Of(good);
  std::string bad = good;
  bad[kChunk * 5 + 3] ^= 0x20;
  FakeBlob b;
  b.body = bad;
  b.piece = 1000;
  up.SetBlob("r", d, b);
  auto writer_gate = std::make_shared<Gate>();
  FetchTable table(store, kChunk, 8, portcullis::proxy::FetchWindow{8, 16, 0});
  table.set_before_write_for_test([writer_gate](uint64_t) { writer_gate->Wait(20s); });
  IdleAtExit idle_at_exit{table};
  struct OpenAtExit {
    std::shared_ptr<Gate> g;
    ~OpenAtExit() { g->Open(); }
  } open_at_exit{writer_gate};
  bool started = false;
  auto f = table.Join(d, ClientFor(up.url()), "r", &started, nullptr);
  REQUIRE(f.ok());
  BlobFetch& fetch = *f.value();
  // Every byte arrives while the writer is held: the reader reads them from the window.
  Outcome o = ReadAll(fetch, good.size() - 1, 0, 1000, 4 * kChunk);
  REQUIRE(o.last == RR::kData);
  CHECK(Diff(o.data, bad.substr(0, o.data.size())) == "");
  REQUIRE(Eventually([&] { return fetch.size_committed() == good.size(); }));
  CHECK(fetch.stored_chunks_for_test() == 0);
  // The digest fails; the fetch stops its writer (which is writing chunk 0) before dropping.
  writer_gate->Open();
  Outcome rest = ReadAll(fetch, good.size() - 1, o.data.size());
  CHECK(rest.last == RR::kFailed);
  CHECK(o.data.size() + rest.data.size() < good.size());
  REQUIRE(table.WaitIdle(SteadyClock::now() + 10s));
  CHECK(fetch.failure().code() == Code::kDigestInvalid);
  CHECK_FALSE(Meta(*store, d).has_value());
  for (uint64_t i = 0; i < 7; ++i) {
    CAPTURE(i);
    CHECK_FALSE(HasChunk(*store, d, i));
  }
}

TEST_CASE("proxy: fetches borrow beyond max_pending from one shared pool, and give it back") {
  TempDir dir;
  auto store = OpenStore(dir);
  FakeRegistry up;
  const std::string body_a = Pattern(kChunk * 20 + 1, 24), body_b = Pattern(kChunk * 10 + 2, 25);
  Digest da = Digest::Sha256Of(body_a), db = Digest::Sha256Of(body_b);
  FakeBlob a, b;
  a.body = body_a;
  b.body = body_b;
  up.SetBlob("r", da, a);
  up.SetBlob("r", db, b);
  auto writer_gate = std::make_shared<Gate>();
  FetchTable table(store, kChunk, 8, portcullis::proxy::FetchWindow{1, 2, 3});
  table.set_before_write_for_test([writer_gate](uint64_t) { writer_gate->Wait(20s); });
  IdleAtExit idle_at_exit{table};
  struct OpenAtExit {
    std::shared_ptr<Gate> g;
    ~OpenAtExit() { g->Open(); }
  } open_at_exit{writer_gate};
  auto client = ClientFor(up.url());
  bool started = false;
  auto fa = table.Join(da, client, "r", &started, nullptr);
  REQUIRE(fa.ok());
  // With the store held, A gets its own 2 chunks and the pool's 3.
  REQUIRE(Eventually([&] { return fa.value()->size_committed() >= 5 * kChunk; }));
  std::this_thread::sleep_for(200ms);
  CHECK(fa.value()->size_committed() == 5 * kChunk);
  CHECK(table.pool_used() == 3);
  // B finds the pool empty: its own 2 chunks only.
  auto fb = table.Join(db, client, "r", &started, nullptr);
  REQUIRE(fb.ok());
  REQUIRE(Eventually([&] { return fb.value()->size_committed() >= 2 * kChunk; }));
  std::this_thread::sleep_for(200ms);
  CHECK(fb.value()->size_committed() == 2 * kChunk);
  writer_gate->Open();
  Outcome oa = ReadAll(*fa.value(), body_a.size() - 1, 0, 50000);
  Outcome ob = ReadAll(*fb.value(), body_b.size() - 1, 0, 50000);
  CHECK(oa.last == RR::kEnd);
  CHECK(ob.last == RR::kEnd);
  CHECK(Diff(oa.data, body_a) == "");
  CHECK(Diff(ob.data, body_b) == "");
  REQUIRE(table.WaitIdle(SteadyClock::now() + 10s));
  CHECK(table.pool_used() == 0);
  CHECK(Diff(ReadBack(*store, da), body_a) == "");
  CHECK(Diff(ReadBack(*store, db), body_b) == "");
}
