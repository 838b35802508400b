// Registry::OpenBlob against eviction under a tight --cache-max-bytes: between
// opening a blob and its body source pinning it, eviction must not drop it,
// whether it was cached or committed meanwhile by the fetch the request
// joined (the race behind a "reading config blob: unexpected EOF" in
// test_admin's bounded-cache rounds). Real store, registry and fetch; the
// upstream is a fake registry on 127.0.0.1.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>

#include "proxy/blob_body.h"
#include "proxy/body_source_test_util.h"
#include "proxy/fake_registry_test_util.h"
#include "proxy/maintenance.h"
#include "proxy/proxy_test_util.h"

namespace {

using portcullis::oci::Digest;
using portcullis::proxy::BodySource;
using portcullis::proxy::FetchBody;
using portcullis::proxy::Maintenance;
using portcullis::proxy::StoreBody;
using portcullis::proxy::testing::FakeRegistry;
using portcullis::proxy::testing::Proxy;
using portcullis::proxy::testing::QuietLogs;
using portcullis::proxy::testing::ReadOut;
using portcullis::testing::Pattern;
using namespace std::chrono_literals;

}  // namespace

TEST_CASE("registry: a blob opened for a read is not evicted before its body is read") {
  QuietLogs quiet;
  FakeRegistry up;
  const std::string body = Pattern(3000, 5);  // under one chunk: fetched and committed at once
  const Digest d = Digest::Sha256Of(body);
  up.SetBlob("lab/app", d, body);
  Proxy proxy({{"up.test", up.url()}});
  auto route = proxy.registry().Resolve("lab/app", "");
  REQUIRE(route.ok());
  Maintenance evict(&proxy.store(), &proxy.registry().fetches(), 1);  // every blob is over the bound

  // Cold: the fetch commits and is forgotten before the body source exists.
  auto cold = proxy.registry().OpenBlob(*route, d);
  REQUIRE(cold.ok());
  REQUIRE(cold->fetch);
  REQUIRE(cold->fetch->WaitDone(5s));
  proxy.Settle();  // no running fetch protects it now; only the request's pin does
  auto n = evict.EvictIfNeeded();
  REQUIRE(n.ok());
  CHECK(*n == 0);
  auto from_fetch = FetchBody(&proxy.store(), cold->fetch, 0, static_cast<uint64_t>(cold->size), 5s);
  std::string got;
  CHECK(ReadOut(*from_fetch, &got) == BodySource::Result::kEnd);
  CHECK(got == body);
  from_fetch.reset();
  cold = portcullis::Status::Internal("done");

  // Cached: opened, then eviction runs before the body source is made.
  auto hit = proxy.registry().OpenBlob(*route, d);
  REQUIRE(hit.ok());
  REQUIRE(hit->cache_hit);
  n = evict.EvictIfNeeded();
  REQUIRE(n.ok());
  CHECK(*n == 0);
  auto from_store = StoreBody(&proxy.store(), d, hit->chunk_bytes, 0, static_cast<uint64_t>(hit->size));
  got.clear();
  CHECK(ReadOut(*from_store, &got) == BodySource::Result::kEnd);
  CHECK(got == body);
  from_store.reset();
  hit = portcullis::Status::Internal("done");

  // Once nothing holds it, eviction takes it (so the checks above can fail).
  n = evict.EvictIfNeeded();
  REQUIRE(n.ok());
  CHECK(*n == 1);
}
