// Tests of the event-loop path (TryRegistryRequestInMemory): it answers a
// cached manifest exactly as a worker would, and nothing it cannot decide from
// memory: no blob, no listing, no tag past its TTL, no manifest of another
// repository, and never a manifest the gate has not accepted under the current
// policy (written as the attacks: a stale verdict, a swapped policy).
#include <doctest/doctest.h>

#include <algorithm>
#include <optional>
#include <string>

#include "proxy/fake_registry_test_util.h"
#include "proxy/proxy_test_util.h"
#include "proxy/server.h"
#include "verifier/policy.h"

namespace portcullis::proxy {
namespace {

using oci::Digest;
using testing::FakeRegistry;
using testing::Proxy;
using testing::QuietLogs;

const std::string kManifest = std::string(R"({"schemaVersion":2,"mediaType":")") + std::string(oci::kOciManifest) +
                              R"(","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
                              Digest::Sha256Of("{}").ToString() +
                              R"(","size":2},"layers":[],"annotations":{"note":"in memory"}})";
const Digest kDigest = Digest::Sha256Of(kManifest);

HttpRequest Request(const std::string& method, const std::string& path) {
  HttpRequest r;
  r.method = method;
  r.path = path;
  r.target = path;
  r.remote_addr = "127.0.0.1";
  r.headers = {{"Host", "127.0.0.1"}};
  return r;
}

std::optional<HttpResponse> InMemory(Proxy& p, const std::string& path, const std::string& method = "GET") {
  return TryRegistryRequestInMemory(p.registry(), p.config(), Request(method, path));
}

std::string HeaderOf(const HttpResponse& r, const std::string& name) {
  auto it = std::find_if(r.headers.begin(), r.headers.end(), [&](const auto& h) { return h.first == name; });
  return it == r.headers.end() ? "" : it->second;
}

void SetPolicy(Proxy& p, const std::string& text) {
  auto policy = verifier::Policy::Parse(text, "test.json", "");
  REQUIRE_MESSAGE(policy.ok(), policy.status().ToString());
  p.registry().gate().SetPolicy(*policy);
}

TEST_CASE("proxy: the event-loop path answers a cached manifest as a worker does, and nothing it cannot decide in memory") {
  QuietLogs quiet;
  FakeRegistry up;
  up.SetTagged("r", "v1", kManifest);
  Proxy proxy({{"upstream.test", up.url()}}, [](config::Config& c) { c.tag_ttl_seconds = 3600; });
  const std::string by_tag = "/v2/r/manifests/v1", by_digest = "/v2/r/manifests/" + kDigest.ToString();

  // Nothing is cached yet: the worker must ask the upstream.
  CHECK_FALSE(InMemory(proxy, by_tag).has_value());
  CHECK_FALSE(InMemory(proxy, by_digest).has_value());
  HttpResponse worker = HandleRegistryRequest(proxy.registry(), proxy.config(), Request("GET", by_tag));
  REQUIRE(worker.status == 200);
  const int gets = up.manifest_gets;

  const uint64_t hits = proxy.registry().counters().manifest_hits.load();
  for (const std::string& path : {by_tag, by_digest}) {
    for (const char* method : {"GET", "HEAD"}) {
      CAPTURE(path);
      CAPTURE(method);
      auto fast = InMemory(proxy, path, method);
      REQUIRE(fast.has_value());
      HttpResponse slow = HandleRegistryRequest(proxy.registry(), proxy.config(), Request(method, path));
      CHECK(fast->status == 200);
      CHECK(fast->body == kManifest);
      CHECK(fast->body == slow.body);
      CHECK(fast->content_type == slow.content_type);
      CHECK(fast->headers == slow.headers);
      CHECK(HeaderOf(*fast, "Docker-Content-Digest") == kDigest.ToString());
      CHECK(fast->log.cache == "hit");
    }
  }
  CHECK(proxy.registry().counters().manifest_hits.load() == hits + 8);  // 4 in memory, 4 by the worker
  CHECK(up.manifest_gets == gets);

  // /v2/ and refusals by shape need nothing: answered.
  auto base = InMemory(proxy, "/v2/");
  REQUIRE(base.has_value());
  CHECK(base->status == 200);
  auto post = InMemory(proxy, by_tag, "POST");
  REQUIRE(post.has_value());
  CHECK(post->status == 405);

  // Blobs, listings, unknown tags and names: sent on to a worker.
  for (const std::string& path :
       {"/v2/r/blobs/" + kDigest.ToString(), std::string("/v2/r/tags/list"), "/v2/r/referrers/" + kDigest.ToString(),
        std::string("/v2/r/manifests/v2"), "/v2/r/manifests/" + Digest::Sha256Of("other").ToString()}) {
    CAPTURE(path);
    CHECK_FALSE(InMemory(proxy, path).has_value());
  }
  // The same digest in another repository: that repository was never shown to
  // hold it (review L12), so only a worker (asking the upstream) may answer.
  CHECK_FALSE(InMemory(proxy, "/v2/other/manifests/" + kDigest.ToString()).has_value());
  HttpResponse other = HandleRegistryRequest(proxy.registry(), proxy.config(),
                                             Request("GET", "/v2/other/manifests/" + kDigest.ToString()));
  CHECK(other.status == 404);
}

TEST_CASE("proxy: the event-loop path never serves a tag past its TTL") {
  QuietLogs quiet;
  FakeRegistry up;
  up.SetTagged("r", "v1", kManifest);
  Proxy proxy({{"upstream.test", up.url()}}, [](config::Config& c) { c.tag_ttl_seconds = 0; });
  REQUIRE(HandleRegistryRequest(proxy.registry(), proxy.config(), Request("GET", "/v2/r/manifests/v1")).status == 200);
  // A tag must be revalidated upstream (a worker's HEAD); its digest is immutable.
  CHECK_FALSE(InMemory(proxy, "/v2/r/manifests/v1").has_value());
  CHECK(InMemory(proxy, "/v2/r/manifests/" + kDigest.ToString()).has_value());
}

TEST_CASE("proxy: the event-loop path never serves a manifest the current policy has not accepted") {
  QuietLogs quiet;
  FakeRegistry up;
  up.SetTagged("r", "v1", kManifest);
  Proxy proxy({{"upstream.test", up.url()}}, [](config::Config& c) { c.tag_ttl_seconds = 3600; });
  const std::string by_tag = "/v2/r/manifests/v1", by_digest = "/v2/r/manifests/" + kDigest.ToString();
  const std::string reject = R"({"rules":[{"match":"upstream.test/**","action":"reject"}],"default":"reject"})";
  const std::string accept = R"({"rules":[{"match":"upstream.test/**","action":"accept"}],"default":"reject"})";

  // Refused: the bytes are cached, but memory holds no accepting verdict.
  SetPolicy(proxy, reject);
  CHECK(HandleRegistryRequest(proxy.registry(), proxy.config(), Request("GET", by_tag)).status == 403);
  CHECK_FALSE(InMemory(proxy, by_tag).has_value());
  CHECK_FALSE(InMemory(proxy, by_digest).has_value());

  // Accepted: then served from memory.
  SetPolicy(proxy, accept);
  REQUIRE(HandleRegistryRequest(proxy.registry(), proxy.config(), Request("GET", by_tag)).status == 200);
  auto fast = InMemory(proxy, by_tag);
  REQUIRE(fast.has_value());
  CHECK(fast->status == 200);

  // The policy swapped back to refusing: the old acceptance is not reused.
  SetPolicy(proxy, reject);
  CHECK_FALSE(InMemory(proxy, by_tag).has_value());
  CHECK(HandleRegistryRequest(proxy.registry(), proxy.config(), Request("GET", by_tag)).status == 403);
  CHECK_FALSE(InMemory(proxy, by_tag).has_value());

  // Over HTTP (the engine runs the event-loop path first): still refused.
  auto cli = proxy.Client();
  auto r = cli->Get(by_tag.c_str());
  REQUIRE(r);
  CHECK(r->status == 403);
}

}  // namespace
}  // namespace portcullis::proxy
