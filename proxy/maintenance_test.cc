// Unit tests of proxy/maintenance.cc on a real store: LRU eviction under the
// byte bound (order, the 90% target, pinned blobs spared, dependent manifests
// and tags dropped with the blob), the background loop, gc, purge and fsck
// (damaged bytes found and dropped, sound ones kept).
#include "proxy/maintenance.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "proxy/store_test_util.h"
#include "tests/test_util.h"

namespace portcullis::proxy {
namespace {

using oci::Digest;
using portcullis::testing::Pattern;
using portcullis::testing::TempDir;
using testing::OpenStore;

constexpr uint64_t kChunk = 64 * 1024;

// The store, a fetch table on it (nothing running) and helpers to fill it.
struct Fixture {
  TempDir dir;
  std::shared_ptr<Store> store{OpenStore(dir.str())};
  FetchTable fetches{store, kChunk, 4};

  // Commits a blob of `n` bytes (seeded); returns its digest.
  Digest PutBlob(size_t n, unsigned seed) {
    const std::string data = Pattern(n, seed);
    Digest d = Digest::Sha256Of(data);
    return PutBytesAs(d, data);
  }
  // Commits `data` under digest `d` (which need not match: a damaged blob).
  Digest PutBytesAs(const Digest& d, const std::string& data) {
    REQUIRE(store->BeginBlob(d, kChunk).ok());
    uint64_t i = 0;
    for (; (i + 1) * kChunk < data.size(); ++i) REQUIRE(store->PutChunk(d, i, data.substr(i * kChunk, kChunk)).ok());
    REQUIRE(store->CommitBlob(d, i, data.substr(i * kChunk), data.size(), kChunk).ok());
    return d;
  }
  Digest PutManifest(const std::string& body) {
    Digest d = Digest::Sha256Of(body);
    REQUIRE(store->PutManifest(d, {"application/vnd.oci.image.manifest.v1+json", body}).ok());
    return d;
  }
  bool HasBlob(const Digest& d) {
    auto m = store->GetBlobMeta(d);
    REQUIRE(m.ok());
    return m->has_value() && (*m)->complete;
  }
  bool HasManifest(const Digest& d) {
    auto m = store->GetManifest(d);
    REQUIRE(m.ok());
    return m->has_value();
  }
  bool HasTag(const std::string& key) {
    auto t = store->GetTag(key);
    REQUIRE(t.ok());
    return t->has_value();
  }
};

// Waits until the wall clock's second changes, so the next access is strictly later.
void NextSecond() {
  const auto now = [] {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  const auto start = now();
  for (int i = 0; i < 300 && now() == start; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

TEST_CASE("maintenance: no bound, or under it: nothing is evicted") {
  Fixture f;
  Digest a = f.PutBlob(100 * 1024, 1);
  Maintenance unbounded(f.store.get(), &f.fetches, 0);
  auto n = unbounded.EvictIfNeeded();
  REQUIRE(n.ok());
  CHECK(*n == 0);
  Maintenance roomy(f.store.get(), &f.fetches, 1 << 20);
  n = roomy.EvictIfNeeded();
  REQUIRE(n.ok());
  CHECK(*n == 0);
  CHECK(f.HasBlob(a));
  CHECK(roomy.evictions == 0);
}

TEST_CASE("maintenance: eviction drops the least recently used blob first, down to 90% of the bound") {
  Fixture f;
  const size_t sz = 100 * 1024;
  Digest old_unused = f.PutBlob(sz, 1);
  Digest old_used = f.PutBlob(sz, 2);
  NextSecond();
  f.store->Touch(old_used);  // used after old_unused: it must survive
  Digest fresh = f.PutBlob(sz, 3);
  // 300 KiB cached, bound 280 KiB: the target is 252 KiB, so exactly one goes.
  Maintenance m(f.store.get(), &f.fetches, 280 * 1024);
  auto n = m.EvictIfNeeded();
  REQUIRE(n.ok());
  CHECK(*n == 1);
  CHECK_FALSE(f.HasBlob(old_unused));
  CHECK(f.HasBlob(old_used));
  CHECK(f.HasBlob(fresh));
  CHECK(m.evictions == 1);
  CHECK(m.evicted_bytes == sz);
  CHECK(f.store->Stats().blob_bytes == 2 * sz);

  // A bound that needs both to go: 200 KiB > 90 KiB; the target 81 KiB is below one blob.
  Maintenance tight(f.store.get(), &f.fetches, 90 * 1024);
  n = tight.EvictIfNeeded();
  REQUIRE(n.ok());
  CHECK(*n == 2);
  CHECK(f.store->Stats().blobs == 0);
}

TEST_CASE("maintenance: eviction spares a pinned blob (one being read) and takes the next") {
  Fixture f;
  const size_t sz = 100 * 1024;
  Digest oldest = f.PutBlob(sz, 1);
  NextSecond();
  Digest middle = f.PutBlob(sz, 2);
  NextSecond();
  Digest newest = f.PutBlob(sz, 3);
  f.store->Pin(oldest);
  Maintenance m(f.store.get(), &f.fetches, 280 * 1024);
  auto n = m.EvictIfNeeded();
  REQUIRE(n.ok());
  CHECK(*n == 1);
  CHECK(f.HasBlob(oldest));
  CHECK_FALSE(f.HasBlob(middle));
  CHECK(f.HasBlob(newest));
  f.store->Unpin(oldest);
  CHECK_FALSE(f.store->Pinned(oldest));
}

TEST_CASE("maintenance: an evicted blob takes the manifests that need it, their indexes and tags") {
  Fixture f;
  Digest layer = f.PutBlob(200 * 1024, 1);
  NextSecond();
  Digest other = f.PutBlob(10 * 1024, 2);
  Digest image = f.PutManifest(R"({"schemaVersion":2,"layers":["the layer"]})");
  Digest index = f.PutManifest(R"({"schemaVersion":2,"manifests":["the image"]})");
  Digest unrelated = f.PutManifest(R"({"schemaVersion":2,"layers":["other"]})");
  REQUIRE(f.store->PutRefs(image, {layer}).ok());
  REQUIRE(f.store->PutRefs(index, {image}).ok());
  REQUIRE(f.store->PutRefs(unrelated, {other}).ok());
  REQUIRE(f.store->PutTag("up/app:v1", {image, 1}).ok());
  REQUIRE(f.store->PutTag("up/app:multi", {index, 1}).ok());
  REQUIRE(f.store->PutTag("up/app:other", {unrelated, 1}).ok());

  Maintenance m(f.store.get(), &f.fetches, 150 * 1024);
  auto n = m.EvictIfNeeded();
  REQUIRE(n.ok());
  CHECK(*n == 1);
  CHECK_FALSE(f.HasBlob(layer));
  CHECK_FALSE(f.HasManifest(image));
  CHECK_FALSE(f.HasManifest(index));
  CHECK_FALSE(f.HasTag("up/app:v1"));
  CHECK_FALSE(f.HasTag("up/app:multi"));
  CHECK(f.HasBlob(other));
  CHECK(f.HasManifest(unrelated));
  CHECK(f.HasTag("up/app:other"));
}

TEST_CASE("maintenance: the background loop evicts after a nudge and stops cleanly") {
  Fixture f;
  for (unsigned i = 0; i < 4; ++i) f.PutBlob(100 * 1024, i);
  Maintenance m(f.store.get(), &f.fetches, 250 * 1024);
  m.Start(std::chrono::seconds(3600));  // only the nudge can wake it in time
  m.Nudge();
  bool under = false;
  for (int i = 0; i < 500 && !under; ++i) {
    under = f.store->Stats().blob_bytes <= 225 * 1024 && m.evictions == 2;
    if (!under) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(under);
  CHECK(m.evictions == 2);
  m.Stop();
  m.Stop();  // twice is fine
}

TEST_CASE("maintenance: gc drops blobs and manifests no repository links, keeps the linked") {
  Fixture f;
  Digest linked = f.PutBlob(1000, 1);
  Digest orphan = f.PutBlob(2000, 2);
  Digest pinned_orphan = f.PutBlob(3000, 3);
  Digest man_linked = f.PutManifest(R"({"m":1})");
  Digest man_orphan = f.PutManifest(R"({"m":2})");
  REQUIRE(f.store->PutLinks("up/app", {linked, man_linked}).ok());
  f.store->Pin(pinned_orphan);
  Maintenance m(f.store.get(), &f.fetches, 0);
  auto r = m.Gc();
  REQUIRE(r.ok());
  CHECK(r->blobs == 1);
  CHECK(r->bytes == 2000);
  CHECK(r->manifests == 1);
  CHECK(f.HasBlob(linked));
  CHECK_FALSE(f.HasBlob(orphan));
  CHECK(f.HasBlob(pinned_orphan));
  CHECK(f.HasManifest(man_linked));
  CHECK_FALSE(f.HasManifest(man_orphan));
  f.store->Unpin(pinned_orphan);
}

TEST_CASE("maintenance: purge by digest and by repository; bad and unknown targets") {
  Fixture f;
  Digest shared = f.PutBlob(1000, 1);
  Digest only_a = f.PutBlob(1000, 2);
  Digest man = f.PutManifest(R"({"m":"a"})");
  REQUIRE(f.store->PutLinks("up/a", {shared, only_a, man}).ok());
  REQUIRE(f.store->PutLinks("up/b", {shared}).ok());
  REQUIRE(f.store->PutTag("up/a:v1", {man, 1}).ok());
  Maintenance m(f.store.get(), &f.fetches, 0);

  auto r = m.Purge("up/a");
  REQUIRE(r.ok());
  CHECK(r->links == 3);
  CHECK(r->tags == 1);
  CHECK(r->blobs == 1);  // only_a; `shared` is still linked from up/b
  CHECK(r->manifests == 1);
  CHECK(f.HasBlob(shared));
  CHECK_FALSE(f.HasBlob(only_a));
  CHECK_FALSE(f.HasTag("up/a:v1"));
  CHECK(m.Purge("up/a").status().code() == Code::kNotFound);  // nothing left

  r = m.Purge(shared.ToString());
  REQUIRE(r.ok());
  CHECK(r->blobs == 1);
  CHECK_FALSE(f.HasBlob(shared));
  CHECK_FALSE(f.store->HasLink("up/b", shared));
  CHECK(m.Purge(shared.ToString()).status().code() == Code::kNotFound);

  CHECK(m.Purge("no-slash").status().code() == Code::kInvalidArgument);
  CHECK(m.Purge("/leading").status().code() == Code::kInvalidArgument);
  CHECK(m.Purge("up/../etc").status().code() != Code::kOk);
  CHECK(m.Purge("sha256:nothex").status().code() != Code::kOk);
}

TEST_CASE("maintenance: fsck re-hashes every blob and manifest, drops the damaged, keeps the sound") {
  Fixture f;
  Digest good = f.PutBlob(3 * kChunk + 17, 1);
  const std::string real = Pattern(2 * kChunk, 2);
  std::string flipped = real;
  flipped[kChunk + 5] ^= 0x01;  // one bit in the second chunk
  Digest bad = f.PutBytesAs(Digest::Sha256Of(real), flipped);
  Digest short_blob = f.PutBytesAs(Digest::Sha256Of(real + "x"), real);  // right prefix, one byte short
  Digest man_good = f.PutManifest(R"({"sound":true})");
  Digest man_bad = Digest::Sha256Of("what it should be");
  REQUIRE(f.store->PutManifest(man_bad, {"application/vnd.oci.image.manifest.v1+json", "something else"}).ok());

  Maintenance m(f.store.get(), &f.fetches, 0);
  auto r = m.Fsck();
  REQUIRE(r.ok());
  CHECK(r->checked == 5);
  REQUIRE(r->bad.size() == 3);
  CHECK(std::find(r->bad.begin(), r->bad.end(), bad.ToString()) != r->bad.end());
  CHECK(std::find(r->bad.begin(), r->bad.end(), short_blob.ToString()) != r->bad.end());
  CHECK(std::find(r->bad.begin(), r->bad.end(), man_bad.ToString()) != r->bad.end());
  CHECK(f.HasBlob(good));
  CHECK_FALSE(f.HasBlob(bad));
  CHECK_FALSE(f.HasBlob(short_blob));
  CHECK(f.HasManifest(man_good));
  CHECK_FALSE(f.HasManifest(man_bad));

  // A second pass finds everything sound.
  r = m.Fsck();
  REQUIRE(r.ok());
  CHECK(r->checked == 2);
  CHECK(r->bad.empty());
}

}  // namespace
}  // namespace portcullis::proxy
