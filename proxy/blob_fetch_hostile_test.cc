// Tests for proxy/blob_fetch.h written as attacks: a token service that
// answers a token of the wrong JSON type (review M4: it ended the process on
// the fetch thread), a thread that cannot be created (review L10: the slot was
// lost for good), and an on_done callback that throws.
#include <doctest/doctest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include "proxy/blob_fetch.h"
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
using portcullis::testing::TempDir;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kChunk = 4096;

std::shared_ptr<Store> OpenStore(const TempDir& dir) {
  return std::shared_ptr<Store>(portcullis::proxy::testing::OpenStore(dir.path.string()));
}
using portcullis::proxy::testing::ClientFor;

// A registry whose every /v2/ answer is a Bearer challenge naming its own
// /token, which answers `token_body`.
class HostileTokenRegistry {
 public:
  explicit HostileTokenRegistry(std::string token_body) : token_body_(std::move(token_body)) {
    svr_.set_keep_alive_timeout(1);
    svr_.Get("/token", [this](const httplib::Request&, httplib::Response& res) {
      ++token_hits;
      res.set_content(token_body_, "application/json");
    });
    svr_.Get(R"(/v2/.*)", [this](const httplib::Request&, httplib::Response& res) {
      res.status = 401;
      res.set_header("WWW-Authenticate", "Bearer realm=\"" + url() + "/token\",service=\"svc\"");
      res.set_content(R"({"errors":[{"code":"UNAUTHORIZED","message":"auth","detail":null}]})", "application/json");
    });
    port_ = svr_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
    auto deadline = Clock::now() + 5s;
    while (!svr_.is_running() && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    REQUIRE(svr_.is_running());
  }
  ~HostileTokenRegistry() {
    svr_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::atomic<int> token_hits{0};

 private:
  std::string token_body_;
  httplib::Server svr_;
  std::thread thread_;
  int port_ = 0;
};

struct IdleAtExit {
  FetchTable& table;
  ~IdleAtExit() { table.WaitIdle(Clock::now() + 15s); }
};

}  // namespace

TEST_CASE("proxy: fetch survives a token service answering a token of the wrong type") {
  for (const char* body : {R"({"token":1})", R"({"token":null})", R"({"access_token":{}})", "[]", "{\"token\":"}) {
    CAPTURE(body);
    TempDir dir;
    auto store = OpenStore(dir);
    HostileTokenRegistry up(body);
    FetchTable table(store, kChunk, 4);
    IdleAtExit idle_at_exit{table};
    const Digest d = Digest::Sha256Of("any");
    bool started = false;
    std::atomic<int> done{0};
    auto f = table.Join(d, ClientFor(up.url()), "r", &started, [&](const BlobFetch&) { ++done; });
    REQUIRE(f.ok());
    int64_t size = 0;
    // Before the fix the fetch thread threw nlohmann::type_error: std::terminate.
    auto st = f.value()->WaitForHeaders(10s, &size);
    CHECK(st.code() == Code::kUpstreamInvalid);
    CHECK(st.message().find("token service") != std::string::npos);
    REQUIRE(table.WaitIdle(Clock::now() + 10s));
    CHECK(done == 1);
    CHECK(up.token_hits >= 1);
    CHECK(table.inflight() == 0);
    auto m = store->GetBlobMeta(d);
    REQUIRE(m.ok());
    CHECK_FALSE(m->has_value());
  }
}

TEST_CASE("proxy: fetch table gives the slot back when no thread can be created") {
  TempDir dir;
  auto store = OpenStore(dir);
  FakeRegistry up;
  const std::string body = "layer bytes";
  const Digest d = Digest::Sha256Of(body);
  up.SetBlob("r", d, body);
  FetchTable table(store, kChunk, 1);
  IdleAtExit idle_at_exit{table};
  table.set_spawner_for_test([](std::function<void()>) {
    throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again), "thread");
  });
  bool started = false;
  auto f = table.Join(d, ClientFor(up.url()), "r", &started, nullptr);
  REQUIRE_FALSE(f.ok());
  CHECK(f.status().code() == Code::kUpstreamUnavailable);
  CHECK(table.inflight() == 0);
  CHECK_FALSE(table.Running(d));
  // Idle at once: no phantom thread is counted.
  CHECK(table.WaitIdle(Clock::now() + 100ms));

  // Threads are back: the same digest starts a real fetch (the bound of 1 is free).
  table.set_spawner_for_test(nullptr);
  auto f2 = table.Join(d, ClientFor(up.url()), "r", &started, nullptr);
  REQUIRE(f2.ok());
  CHECK(started);
  CHECK(f2.value()->WaitDone(10s));
  REQUIRE(table.WaitIdle(Clock::now() + 10s));
  CHECK(up.blob_gets == 1);
}

TEST_CASE("proxy: fetch survives an on_done callback that throws") {
  TempDir dir;
  auto store = OpenStore(dir);
  FakeRegistry up;
  const std::string body = "more layer bytes";
  const Digest d = Digest::Sha256Of(body);
  up.SetBlob("r", d, body);
  FetchTable table(store, kChunk, 2);
  IdleAtExit idle_at_exit{table};
  bool started = false;
  auto f = table.Join(d, ClientFor(up.url()), "r", &started,
                      [](const BlobFetch&) { throw std::runtime_error("logging failed"); });
  REQUIRE(f.ok());
  CHECK(f.value()->WaitDone(10s));
  CHECK(table.WaitIdle(Clock::now() + 10s));
  CHECK(table.inflight() == 0);
}

// Review L2, the second race: a client found the blob not yet cached, the
// running fetch then committed and left the table, and the client's Join
// started a second fetch whose BeginBlob turned the complete record back into
// a pending one (and whose failure would have dropped the good blob).
TEST_CASE("proxy: a second fetch of a digest already complete never rewrites or drops it (review L2)") {
  TempDir dir;
  auto store = OpenStore(dir);
  FakeRegistry up;
  const std::string body = "a layer that is cached";
  const Digest d = Digest::Sha256Of(body);
  up.SetBlob("r", d, "lying bytes that do not match the digest");
  REQUIRE(store->BeginBlob(d, kChunk).ok());
  REQUIRE(store->CommitBlob(d, 0, body, body.size(), kChunk).ok());

  // The table sees it is complete: no fetch, no upstream GET.
  FetchTable table(store, kChunk, 2);
  IdleAtExit idle_at_exit{table};
  bool started = false;
  auto f = table.Join(d, ClientFor(up.url()), "r", &started, nullptr);
  REQUIRE_FALSE(f.ok());
  CHECK(f.status().code() == Code::kAlreadyExists);
  CHECK(up.blob_gets == 0);

  // A fetch that gets past the table anyway: BeginBlob refuses, and the
  // failure (the upstream lies too) drops nothing it did not write.
  CHECK(store->BeginBlob(d, kChunk).code() == Code::kAlreadyExists);
  BlobFetch stray(d, store, kChunk);
  stray.Run(ClientFor(up.url()).get(), "r");
  CHECK(stray.failed());
  auto meta = store->GetBlobMeta(d);
  REQUIRE(meta.ok());
  REQUIRE(meta->has_value());
  CHECK((*meta)->complete);
  CHECK((*meta)->size == body.size());
  rocksdb::PinnableSlice chunk;
  REQUIRE(store->ReadChunk(d, 0, &chunk).ok());
  CHECK(chunk.ToString() == body);
}

// Review L2, the first race: a purge (or eviction) checked that no fetch ran,
// then scanned; a fetch started in between wrote chunks the purge deleted,
// then committed a complete record without them. A hold closes the window.
TEST_CASE("proxy: no fetch starts while a digest is held for removal, and no hold is taken while one runs (review L2)") {
  TempDir dir;
  auto store = OpenStore(dir);
  FakeRegistry up;
  const std::string body = "layer bytes to purge";
  const Digest d = Digest::Sha256Of(body);
  FakeBlob slow;
  slow.body = body;
  slow.gate = std::make_shared<portcullis::proxy::testing::Gate>();
  slow.gate_at = 5;
  up.SetBlob("r", d, slow);
  FetchTable table(store, kChunk, 2);
  IdleAtExit idle_at_exit{table};
  bool started = false;
  {
    auto hold = table.HoldIdle(d);
    REQUIRE(hold.has_value());
    auto second = table.HoldIdle(d);  // holds nest
    REQUIRE(second.has_value());
    auto f = table.Join(d, ClientFor(up.url()), "r", &started, nullptr);
    REQUIRE_FALSE(f.ok());
    CHECK(f.status().code() == Code::kTooManyRequests);
    CHECK_FALSE(table.Running(d));
    second.reset();
    CHECK_FALSE(table.Join(d, ClientFor(up.url()), "r", &started, nullptr).ok());  // the first still holds
  }
  CHECK(up.blob_gets == 0);
  // Released: a fetch starts; while it runs, no hold is given.
  auto f = table.Join(d, ClientFor(up.url()), "r", &started, nullptr);
  REQUIRE(f.ok());
  CHECK(started);
  CHECK_FALSE(table.HoldIdle(d).has_value());
  slow.gate->Open();
  CHECK(f.value()->WaitDone(10s));
  REQUIRE(table.WaitIdle(Clock::now() + 10s));
  CHECK(table.HoldIdle(d).has_value());
}

// Shutdown after a cold pull: `portcullis serve` waits for WaitIdle, then
// destroys the registry, the upstream clients and the store. A fetch thread
// that still owned the fetch (and through it the store) or the upstream client
// after saying it was done released them on its own, while the process was
// closing RocksDB and exiting: an abort seen in the benchmark's cold pulls.
// Once WaitIdle reports idle, no fetch thread may own any of them.
TEST_CASE("proxy: a fetch thread owns nothing once the table reports idle (no release racing shutdown)") {
  TempDir dir;
  auto store = OpenStore(dir);
  FakeRegistry up;
  const std::string body = "bytes of a cold pull";
  const Digest d = Digest::Sha256Of(body);
  up.SetBlob("r", d, body);
  FetchTable table(store, kChunk, 2);
  // The thread keeps the body (the std::function and whatever it captured)
  // until the checks below are done, as a thread descheduled right after
  // signalling would.
  std::promise<void> checked;
  std::shared_future<void> checked_f = checked.get_future().share();
  std::thread runner;
  table.set_spawner_for_test([&](std::function<void()> fn) {
    runner = std::thread([fn = std::move(fn), checked_f]() mutable {
      fn();
      checked_f.wait();
    });
  });
  std::weak_ptr<RegistryClient> weak_client;
  std::weak_ptr<BlobFetch> weak_fetch;
  {
    auto client = ClientFor(up.url());
    weak_client = client;
    bool started = false;
    auto f = table.Join(d, std::move(client), "r", &started, [](const BlobFetch&) {});
    REQUIRE(f.ok());
    weak_fetch = f.value();
    CHECK(f.value()->WaitDone(10s));
  }
  REQUIRE(table.WaitIdle(Clock::now() + 10s));
  CHECK(weak_fetch.expired());
  CHECK(weak_client.expired());
  checked.set_value();
  runner.join();
}
