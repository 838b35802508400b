// Serving through (review M6): a fetch of a digest whose record another
// upstream's fetch owns writes nothing to the store, so its window is all its
// readers have. These cases check that it waits for its slowest reader at the
// window's bound instead of cutting that reader off, and that a reader which
// leaves lets it go on. Real fetches from fake upstreams on 127.0.0.1, read
// through the engine's own body source (FetchBody).
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "proxy/blob_body.h"
#include "proxy/blob_fetch.h"
#include "proxy/body_source_test_util.h"
#include "proxy/fake_registry_test_util.h"
#include "proxy/store_test_util.h"
#include "tests/test_util.h"

namespace {

using portcullis::oci::Digest;
using portcullis::proxy::BlobFetch;
using portcullis::proxy::BodyPiece;
using portcullis::proxy::BodySource;
using portcullis::proxy::FetchBody;
using portcullis::proxy::FetchTable;
using portcullis::proxy::FetchWindow;
using portcullis::proxy::Store;
using portcullis::proxy::testing::ClientFor;
using portcullis::proxy::testing::FakeBlob;
using portcullis::proxy::testing::FakeRegistry;
using portcullis::proxy::testing::Gate;
using portcullis::proxy::testing::ReadOut;
using portcullis::proxy::testing::ReadUpTo;
using portcullis::testing::Pattern;
using portcullis::testing::TempDir;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kChunk = 4096;
// The window serving through: keep_chunks 2 + max_pending 3, and the chunk being filled.
constexpr uint64_t kBound = (2 + 3 + 1) * kChunk;

// Another upstream's fetch owns the digest's record and is held after its
// first bytes (until `gate` opens); this one, from an honest upstream, serves
// through. Members in teardown order: the gate opens before the table waits.
struct ServeThrough {
  explicit ServeThrough(const std::string& body)
      : store(portcullis::proxy::testing::OpenStore(dir.path.string())),
        d(Digest::Sha256Of(body)),
        table(store, kChunk, 4, FetchWindow{2, 3, 0}) {
    FakeBlob held;
    held.body = body;
    held.gate_at = 100;
    held.gate = gate;
    owner_up.SetBlob("r", d, held);
    FakeBlob honest;
    honest.body = body;
    honest.piece = 1000;
    good_up.SetBlob("r", d, honest);
    bool started = false;
    auto o = table.Join("owner.test", d, ClientFor(owner_up.url()), "r", &started, nullptr);
    REQUIRE(o.ok());
    owner = *o;
    int64_t size = 0;
    REQUIRE(owner->WaitForHeaders(5s, &size).ok());
    auto f = table.Join("good.test", d, ClientFor(good_up.url()), "r", &started, nullptr);
    REQUIRE(f.ok());
    fetch = *f;
    REQUIRE(fetch->serve_through());
  }
  ~ServeThrough() {
    gate->Open();
    owner.reset();
    fetch.reset();
    table.WaitIdle(Clock::now() + 15s);
  }
  TempDir dir;
  std::shared_ptr<Store> store;
  Digest d;
  FakeRegistry owner_up, good_up;
  std::shared_ptr<Gate> gate = std::make_shared<Gate>();
  FetchTable table;
  std::shared_ptr<BlobFetch> owner, fetch;
};

}  // namespace

TEST_CASE("serve through: a reader slower than the upstream gets every byte; the fetch waits for it") {
  const std::string body = Pattern(kChunk * 40 + 77, 12);
  ServeThrough st(body);
  auto source = FetchBody(st.store.get(), st.fetch, 0, body.size(), 10s);
  // The reader holds after its first piece: the fetch stops at the window's bound.
  std::string got;
  REQUIRE(ReadUpTo(*source, &got, 1, 10s) == BodySource::Result::kData);
  std::this_thread::sleep_for(300ms);
  CHECK(st.fetch->size_committed() <= kBound);
  // Then it reads on, slower than the upstream sends, to the end.
  CHECK(ReadOut(*source, &got, 1ms) == BodySource::Result::kEnd);
  CHECK(got == body);
  CHECK(st.fetch->WaitDone(5s));
}

TEST_CASE("serve through: a reader that leaves lets the others go on") {
  const std::string body = Pattern(kChunk * 30 + 5, 13);
  ServeThrough st(body);
  auto idle = FetchBody(st.store.get(), st.fetch, 0, body.size(), 10s);  // never reads
  auto reader = FetchBody(st.store.get(), st.fetch, 0, body.size(), 10s);
  // The idle reader holds the window at its bound: the other one gets no further.
  std::string got;
  REQUIRE(ReadUpTo(*reader, &got, SIZE_MAX, 2s) == BodySource::Result::kWait);  // 2 s on, still waiting
  CHECK(got.size() <= kBound);
  CHECK(st.fetch->size_committed() <= kBound);
  // Gone (its client hung up): the other reader goes on to the end.
  idle.reset();
  CHECK(ReadOut(*reader, &got) == BodySource::Result::kEnd);
  CHECK(got == body);
}

TEST_CASE("serve through: a reader that joins behind the window fails and holds nobody back") {
  const std::string body = Pattern(kChunk * 30 + 9, 14);
  ServeThrough st(body);
  auto early = FetchBody(st.store.get(), st.fetch, 0, body.size(), 10s);
  std::string got;
  // The early reader reads ten chunks: the window has moved past the start.
  REQUIRE(ReadUpTo(*early, &got, 10 * kChunk, 10s) == BodySource::Result::kData);
  // A reader from the start now: its bytes are gone (nothing is in the store).
  auto late = FetchBody(st.store.get(), st.fetch, 0, body.size(), 10s);
  BodyPiece p;
  CHECK(late->NextPiece(&p, 1500) == BodySource::Result::kFailed);
  // Still there (its connection not yet closed), it does not stop the early one.
  CHECK(ReadOut(*early, &got) == BodySource::Result::kEnd);
  CHECK(got == body);
}
