// End-to-end tests of the proxy in process: a fake upstream registry
// (httplib::Server on 127.0.0.1) → proxy::Store + Router + Registry +
// HttpServer on 127.0.0.1:0 → an httplib::Client as the container runtime.
#include "proxy/server.h"

#include <doctest/doctest.h>
#include <httplib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "oci/manifest.h"
#include "proxy/fake_registry_test_util.h"
#include "proxy/log.h"
#include "proxy/proxy_test_util.h"
#include "proxy/registry.h"
#include "proxy/store.h"
#include "proxy/upstreams.h"
#include "tests/test_util.h"

namespace {

using portcullis::config::Config;
using portcullis::oci::Digest;
using portcullis::proxy::HttpServer;
using portcullis::proxy::Registry;
using portcullis::proxy::Router;
using portcullis::proxy::Store;
using portcullis::testing::Diff;
using portcullis::testing::Pattern;
using portcullis::testing::TempDir;
using portcullis::proxy::testing::FakeBlob;
using portcullis::proxy::testing::FakeManifest;
using portcullis::proxy::testing::FakeRegistry;
using portcullis::proxy::testing::Gate;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

using portcullis::proxy::testing::kChunk;
using portcullis::proxy::testing::ErrorCode;
using portcullis::proxy::testing::Proxy;
using portcullis::proxy::testing::QuietLogs;
const std::string kOciManifestType(portcullis::oci::kOciManifest);

// An OCI image manifest naming `config` and `layer`, pretty-printed so that
// any re-serialisation by the proxy would show.
std::string OciManifest(const std::string& config, const std::string& layer, const std::string& note) {
  nlohmann::ordered_json j;
  j["schemaVersion"] = 2;
  j["mediaType"] = kOciManifestType;
  j["config"] = {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                 {"digest", Digest::Sha256Of(config).ToString()},
                 {"size", config.size()}};
  j["layers"] = nlohmann::ordered_json::array(
      {{{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
        {"digest", Digest::Sha256Of(layer).ToString()},
        {"size", layer.size()}}});
  j["annotations"] = {{"note", note}};
  return j.dump(3) + "\n";
}

// A small image in repo "r" of the fake upstream: a config, a layer of a few
// chunks, and a manifest tagged v1.
struct Image {
  std::string config = R"({"architecture":"amd64","os":"linux"})";
  std::string layer = Pattern(kChunk * 3 + 123, 42);
  std::string manifest;
  Digest manifest_digest, config_digest, layer_digest;
  Image() {
    manifest = OciManifest(config, layer, "v1");
    manifest_digest = Digest::Sha256Of(manifest);
    config_digest = Digest::Sha256Of(config);
    layer_digest = Digest::Sha256Of(layer);
  }
  void Publish(FakeRegistry& up, const std::string& repo = "r") const {
    up.SetTagged(repo, "v1", manifest);
    up.SetBlob(repo, config_digest, config);
    up.SetBlob(repo, layer_digest, layer);
  }
};

TEST_CASE("proxy: server answers /v2/ with the API version header") {
  QuietLogs quiet;
  FakeRegistry up;
  Proxy proxy({{"upstream.test", up.url()}});
  auto cli = proxy.Client();
  for (const std::string path : {"/v2/", "/v2"}) {
    CAPTURE(path);
    auto r = cli->Get(path);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->get_header_value("Docker-Distribution-API-Version") == "registry/2.0");
  }
  auto other = cli->Get("/other");
  REQUIRE(other);
  CHECK(other->status == 404);
  auto unknown = cli->Get("/v2/r/nope/x");
  REQUIRE(unknown);
  CHECK(unknown->status == 404);
  CHECK(unknown->get_header_value("Docker-Distribution-API-Version") == "registry/2.0");
  CHECK(up.Requests().empty());
}

TEST_CASE("proxy: server serves manifests by tag, by digest and for HEAD") {
  QuietLogs quiet;
  FakeRegistry up;
  Image img;
  img.Publish(up);
  Proxy proxy({{"upstream.test", up.url()}});
  auto cli = proxy.Client();

  auto r = cli->Get("/v2/r/manifests/v1");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == img.manifest);
  CHECK(r->get_header_value("Content-Type") == kOciManifestType);
  CHECK(r->get_header_value("Docker-Content-Digest") == img.manifest_digest.ToString());
  CHECK(r->get_header_value("OCI-Namespace") == "upstream.test");
  CHECK(r->get_header_value("Docker-Distribution-API-Version") == "registry/2.0");
  CHECK(up.manifest_gets == 1);

  // By digest: bytes and headers identical, from the cache.
  auto byd = cli->Get("/v2/r/manifests/" + img.manifest_digest.ToString());
  REQUIRE(byd);
  CHECK(byd->status == 200);
  CHECK(byd->body == img.manifest);
  CHECK(byd->get_header_value("Content-Type") == kOciManifestType);
  CHECK(byd->get_header_value("Docker-Content-Digest") == img.manifest_digest.ToString());
  CHECK(up.manifest_gets == 1);

  // HEAD: headers and length, no body.
  auto head = cli->Head("/v2/r/manifests/v1");
  REQUIRE(head);
  CHECK(head->status == 200);
  CHECK(head->body.empty());
  CHECK(head->get_header_value("Content-Length") == std::to_string(img.manifest.size()));
  CHECK(head->get_header_value("Docker-Content-Digest") == img.manifest_digest.ToString());
  CHECK(head->get_header_value("Content-Type") == kOciManifestType);
  auto headd = cli->Head("/v2/r/manifests/" + img.manifest_digest.ToString());
  REQUIRE(headd);
  CHECK(headd->status == 200);
  CHECK(headd->get_header_value("Docker-Content-Digest") == img.manifest_digest.ToString());

  // The same image under the prefixed name and with ?ns=.
  for (const std::string path : {"/v2/upstream.test/r/manifests/v1", "/v2/r/manifests/v1?ns=upstream.test"}) {
    CAPTURE(path);
    auto p = cli->Get(path);
    REQUIRE(p);
    CHECK(p->status == 200);
    CHECK(p->body == img.manifest);
    CHECK(p->get_header_value("OCI-Namespace") == "upstream.test");
  }

  // A digest never fetched through the proxy goes upstream, then is cached.
  const std::string other = OciManifest(img.config, img.layer, "other");
  Digest od = up.SetTagged("r", "other", other);
  auto o1 = cli->Get("/v2/r/manifests/" + od.ToString());
  REQUIRE(o1);
  CHECK(o1->status == 200);
  CHECK(o1->body == other);
  int gets = up.manifest_gets;
  auto o2 = cli->Get("/v2/r/manifests/" + od.ToString());
  REQUIRE(o2);
  CHECK(o2->body == other);
  CHECK(up.manifest_gets == gets);

  // Unknown tag and digest.
  auto missing = cli->Get("/v2/r/manifests/nope");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  CHECK(ErrorCode(missing) == "MANIFEST_UNKNOWN");
  auto missingd = cli->Get("/v2/r/manifests/" + Digest::Sha256Of("nope").ToString());
  REQUIRE(missingd);
  CHECK(missingd->status == 404);
  CHECK(ErrorCode(missingd) == "MANIFEST_UNKNOWN");
  CHECK(missingd->get_header_value("Content-Type") == "application/json");
}

TEST_CASE("proxy: server keeps tags within the TTL and revalidates them with HEAD after") {
  QuietLogs quiet;
  FakeRegistry up;
  Image img;
  img.Publish(up);

  SUBCASE("within the TTL the upstream is not asked") {
    Proxy proxy({{"upstream.test", up.url()}}, [](Config& c) { c.tag_ttl_seconds = 3600; });
    auto cli = proxy.Client();
    auto r1 = cli->Get("/v2/r/manifests/v1");
    REQUIRE(r1);
    CHECK(r1->status == 200);
    CHECK(up.manifest_gets == 1);
    for (int i = 0; i < 3; ++i) {
      auto r = cli->Get("/v2/r/manifests/v1");
      REQUIRE(r);
      CHECK(r->status == 200);
      CHECK(r->body == img.manifest);
    }
    CHECK(up.manifest_gets == 1);
    CHECK(up.manifest_heads == 0);
    // Even when the upstream moved the tag.
    up.SetTagged("r", "v1", OciManifest(img.config, img.layer, "v1-moved"));
    auto r2 = cli->Get("/v2/r/manifests/v1");
    REQUIRE(r2);
    CHECK(Diff(r2->body, img.manifest) == "");
    CHECK(up.manifest_gets == 1);
  }

  SUBCASE("after the TTL a HEAD confirms the digest, no GET") {
    Proxy proxy({{"upstream.test", up.url()}}, [](Config& c) { c.tag_ttl_seconds = 0; });
    auto cli = proxy.Client();
    auto r1 = cli->Get("/v2/r/manifests/v1");
    REQUIRE(r1);
    CHECK(r1->status == 200);
    CHECK(up.manifest_gets == 1);
    CHECK(up.manifest_heads == 0);
    auto r2 = cli->Get("/v2/r/manifests/v1");
    REQUIRE(r2);
    CHECK(r2->status == 200);
    CHECK(Diff(r2->body, img.manifest) == "");
    CHECK(r2->get_header_value("Docker-Content-Digest") == img.manifest_digest.ToString());
    CHECK(up.manifest_heads == 1);
    CHECK(up.manifest_gets == 1);

    // The tag moved upstream: the HEAD shows another digest, the new one is fetched.
    const std::string moved = OciManifest(img.config, img.layer, "v1-moved");
    Digest md = up.SetTagged("r", "v1", moved);
    auto r3 = cli->Get("/v2/r/manifests/v1");
    REQUIRE(r3);
    CHECK(r3->status == 200);
    CHECK(r3->body == moved);
    CHECK(r3->get_header_value("Docker-Content-Digest") == md.ToString());
    CHECK(up.manifest_heads == 2);
    CHECK(up.manifest_gets == 2);

    // The tag is deleted upstream: 404, and the tag record is dropped.
    up.RemoveManifest("r", "v1");
    auto r4 = cli->Get("/v2/r/manifests/v1");
    REQUIRE(r4);
    CHECK(r4->status == 404);
    CHECK(ErrorCode(r4) == "MANIFEST_UNKNOWN");
    auto rec = proxy.store().GetTag("upstream.test/r:v1");
    REQUIRE(rec.ok());
    CHECK_FALSE(rec->has_value());
  }
}

TEST_CASE("proxy: server serves cached tags stale and cached digests while the upstream is down") {
  QuietLogs quiet;
  FakeRegistry up(1);
  Image img;
  img.Publish(up);
  Proxy proxy({{"upstream.test", up.url()}}, [](Config& c) { c.tag_ttl_seconds = 0; });
  auto cli = proxy.Client();
  auto r1 = cli->Get("/v2/r/manifests/v1");
  REQUIRE(r1);
  REQUIRE(r1->status == 200);
  auto b1 = cli->Get("/v2/r/blobs/" + img.layer_digest.ToString());
  REQUIRE(b1);
  REQUIRE(b1->status == 200);
  proxy.Settle();

  up.Stop();
  auto stale = cli->Get("/v2/r/manifests/v1");
  REQUIRE(stale);
  CHECK(stale->status == 200);
  CHECK(stale->body == img.manifest);
  CHECK(stale->get_header_value("Docker-Content-Digest") == img.manifest_digest.ToString());
  CHECK(proxy.registry().counters().stale_served >= 1);

  auto byd = cli->Get("/v2/r/manifests/" + img.manifest_digest.ToString());
  REQUIRE(byd);
  CHECK(byd->status == 200);
  CHECK(byd->body == img.manifest);

  auto blob = cli->Get("/v2/r/blobs/" + img.layer_digest.ToString());
  REQUIRE(blob);
  CHECK(blob->status == 200);
  CHECK(Diff(blob->body, img.layer) == "");

  // What was never cached is unavailable.
  auto never = cli->Get("/v2/r/manifests/v2");
  REQUIRE(never);
  CHECK(never->status == 503);
  CHECK(ErrorCode(never) == "UPSTREAM_UNAVAILABLE");
  auto never_blob = cli->Get("/v2/r/blobs/" + Digest::Sha256Of("never").ToString());
  REQUIRE(never_blob);
  CHECK(never_blob->status == 503);
}

TEST_CASE("proxy: server serves a cached tag stale when the upstream answers 5xx, within max_stale") {
  QuietLogs quiet;
  FakeRegistry up;
  Image img;
  img.Publish(up);
  Proxy proxy({{"upstream.test", up.url()}}, [](Config& c) {
    c.tag_ttl_seconds = 0;
    c.max_stale_seconds = 50;
  });
  auto cli = proxy.Client();
  auto r1 = cli->Get("/v2/r/manifests/v1");
  REQUIRE(r1);
  REQUIRE(r1->status == 200);
  up.fail_status = 503;
  const std::string key = "upstream.test/r:v1";
  const int64_t now = portcullis::proxy::NowSeconds();

  // Confirmed 10 s ago: within max_stale, served from the cache.
  REQUIRE(proxy.store().PutTag(key, {img.manifest_digest, now - 10}).ok());
  int heads = up.manifest_heads;
  auto stale = cli->Get("/v2/r/manifests/v1");
  REQUIRE(stale);
  CHECK(stale->status == 200);
  CHECK(stale->body == img.manifest);
  CHECK(up.manifest_heads == heads + 1);  // it did try the upstream first
  // Serving stale does not refresh the record.
  auto rec = proxy.store().GetTag(key);
  REQUIRE(rec.ok());
  REQUIRE(rec->has_value());
  CHECK((*rec)->fetched_at == now - 10);

  // Confirmed 100 s ago: past max_stale, the upstream's failure is the answer.
  REQUIRE(proxy.store().PutTag(key, {img.manifest_digest, now - 100}).ok());
  auto too_old = cli->Get("/v2/r/manifests/v1");
  REQUIRE(too_old);
  CHECK(too_old->status == 503);
  CHECK(ErrorCode(too_old) == "UPSTREAM_UNAVAILABLE");

  // Back up: revalidated and refreshed.
  up.fail_status = 0;
  auto back = cli->Get("/v2/r/manifests/v1");
  REQUIRE(back);
  CHECK(back->status == 200);
  rec = proxy.store().GetTag(key);
  REQUIRE(rec.ok());
  REQUIRE(rec->has_value());
  CHECK((*rec)->fetched_at >= now);
}

TEST_CASE("proxy: server maps upstream refusals to their codes without serving stale") {
  QuietLogs quiet;
  FakeRegistry up;
  Image img;
  img.Publish(up);
  Proxy proxy({{"upstream.test", up.url()}});
  auto cli = proxy.Client();
  struct Row {
    int upstream;
    int status;
    std::string code;
  };
  for (const Row& row : {Row{403, 403, "DENIED"}, Row{429, 429, "TOOMANYREQUESTS"}, Row{500, 503, "UPSTREAM_UNAVAILABLE"}}) {
    CAPTURE(row.upstream);
    up.fail_status = row.upstream;
    auto m = cli->Get("/v2/r/manifests/v1");
    REQUIRE(m);
    CHECK(m->status == row.status);
    CHECK(ErrorCode(m) == row.code);
    auto b = cli->Get("/v2/r/blobs/" + img.layer_digest.ToString());
    REQUIRE(b);
    CHECK(b->status == row.status);
    CHECK(ErrorCode(b) == row.code);
    proxy.Settle();  // the failed fetch leaves the table before the next row
  }
  up.fail_status = 0;
  proxy.Settle();
  auto meta = proxy.store().GetBlobMeta(img.layer_digest);
  REQUIRE(meta.ok());
  CHECK_FALSE(meta->has_value());
}

TEST_CASE("proxy: server serves blobs, ranges and HEAD") {
  QuietLogs quiet;
  FakeRegistry up;
  Image img;
  img.Publish(up);
  Proxy proxy({{"upstream.test", up.url()}});
  auto cli = proxy.Client();
  const std::string path = "/v2/r/blobs/" + img.layer_digest.ToString();

  // A miss: streamed from the running fetch.
  auto r1 = cli->Get(path);
  REQUIRE(r1);
  CHECK(r1->status == 200);
  CHECK(r1->body.size() == img.layer.size());
  CHECK(Diff(r1->body, img.layer) == "");
  CHECK(r1->get_header_value("Docker-Content-Digest") == img.layer_digest.ToString());
  CHECK(r1->get_header_value("Content-Length") == std::to_string(img.layer.size()));
  CHECK(r1->get_header_value("OCI-Namespace") == "upstream.test");
  proxy.Settle();
  CHECK(up.blob_gets == 1);
  auto meta = proxy.store().GetBlobMeta(img.layer_digest);
  REQUIRE(meta.ok());
  REQUIRE(meta->has_value());
  CHECK((*meta)->complete);
  CHECK((*meta)->size == img.layer.size());

  // A hit: from the store.
  auto r2 = cli->Get(path);
  REQUIRE(r2);
  CHECK(r2->status == 200);
  CHECK(Diff(r2->body, img.layer) == "");
  CHECK(up.blob_gets == 1);

  // Ranges on the cached blob, across chunk boundaries.
  struct Rng {
    size_t from, to;
  };
  for (Rng g : {Rng{0, 0}, Rng{100, 4200}, Rng{4095, 4096}, Rng{kChunk * 3, kChunk * 3 + 122}, Rng{10, 12300}}) {
    CAPTURE(g.from);
    CAPTURE(g.to);
    auto rr = cli->Get(path, {{"Range", "bytes=" + std::to_string(g.from) + "-" + std::to_string(g.to)}});
    REQUIRE(rr);
    CHECK(rr->status == 206);
    CHECK(Diff(rr->body, img.layer.substr(g.from, g.to - g.from + 1)) == "");
    CHECK(rr->get_header_value("Content-Range") == "bytes " + std::to_string(g.from) + "-" +
                                                       std::to_string(g.to) + "/" +
                                                       std::to_string(img.layer.size()));
  }
  // Suffix range.
  auto suffix = cli->Get(path, {{"Range", "bytes=-50"}});
  REQUIRE(suffix);
  CHECK(suffix->status == 206);
  CHECK(Diff(suffix->body, img.layer.substr(img.layer.size() - 50)) == "");

  // A range on a blob that is not cached yet (served from the fetch).
  const std::string cpath = "/v2/r/blobs/" + img.config_digest.ToString();
  auto cr = cli->Get(cpath, {{"Range", "bytes=5-14"}});
  REQUIRE(cr);
  CHECK(cr->status == 206);
  CHECK(Diff(cr->body, img.config.substr(5, 10)) == "");
  proxy.Settle();

  // HEAD: cached → the stored size; the upstream is not asked.
  int heads = up.blob_heads;
  auto h = cli->Head(path);
  REQUIRE(h);
  CHECK(h->status == 200);
  CHECK(h->body.empty());
  CHECK(h->get_header_value("Content-Length") == std::to_string(img.layer.size()));
  CHECK(h->get_header_value("Docker-Content-Digest") == img.layer_digest.ToString());
  CHECK(up.blob_heads == heads);

  // HEAD of a blob not cached: asked upstream, nothing fetched.
  const std::string extra = Pattern(777, 3);
  Digest ed = Digest::Sha256Of(extra);
  up.SetBlob("r", ed, extra);
  int gets = up.blob_gets;
  auto he = cli->Head("/v2/r/blobs/" + ed.ToString());
  REQUIRE(he);
  CHECK(he->status == 200);
  CHECK(he->get_header_value("Content-Length") == "777");
  CHECK(up.blob_gets == gets);
  CHECK(up.blob_heads == heads + 1);

  // Unknown blob.
  auto unknown = cli->Get("/v2/r/blobs/" + Digest::Sha256Of("nope").ToString());
  REQUIRE(unknown);
  CHECK(unknown->status == 404);
  CHECK(ErrorCode(unknown) == "BLOB_UNKNOWN");
  auto unknown_head = cli->Head("/v2/r/blobs/" + Digest::Sha256Of("nope").ToString());
  REQUIRE(unknown_head);
  CHECK(unknown_head->status == 404);

  // The cached bytes are not served to a repository the upstream says lacks them.
  auto other_repo = cli->Get("/v2/other/blobs/" + img.layer_digest.ToString());
  REQUIRE(other_repo);
  CHECK(other_repo->status == 404);
  CHECK(ErrorCode(other_repo) == "BLOB_UNKNOWN");
  auto other_head = cli->Head("/v2/other/blobs/" + img.layer_digest.ToString());
  REQUIRE(other_head);
  CHECK(other_head->status == 404);
}

TEST_CASE("proxy: a manifest naming another repository's cached layer does not make it servable there (review L12)") {
  QuietLogs quiet;
  FakeRegistry up;
  Image img;
  img.Publish(up, "private");
  Proxy proxy({{"upstream.test", up.url()}});
  auto cli = proxy.Client();
  // The private repository's layer gets cached through a client that may read it.
  REQUIRE(cli->Get("/v2/private/manifests/v1"));
  auto cached = cli->Get("/v2/private/blobs/" + img.layer_digest.ToString());
  REQUIRE(cached);
  CHECK(cached->status == 200);
  proxy.Settle();
  // A permissive upstream accepts a manifest in "evil" that names the layer
  // without holding it; the proxy fetches that manifest fine.
  up.SetTagged("evil", "v1", img.manifest);
  auto m = cli->Get("/v2/evil/manifests/v1");
  REQUIRE(m);
  CHECK(m->status == 200);
  // The layer is not served in "evil": the upstream does not hold it there.
  auto leak = cli->Get("/v2/evil/blobs/" + img.layer_digest.ToString());
  REQUIRE(leak);
  CHECK(leak->status == 404);
  CHECK(ErrorCode(leak) == "BLOB_UNKNOWN");
  CHECK(leak->body.find(img.layer.substr(0, 64)) == std::string::npos);
  auto head = cli->Head("/v2/evil/blobs/" + img.layer_digest.ToString());
  REQUIRE(head);
  CHECK(head->status == 404);
}

TEST_CASE("proxy: server streams a blob the upstream sends without Content-Length") {
  QuietLogs quiet;
  FakeRegistry up;
  const std::string body = Pattern(kChunk * 2 + 999, 11);
  Digest d = Digest::Sha256Of(body);
  FakeBlob chunked;  // no Content-Length
  chunked.body = body;
  chunked.chunked = true;
  up.SetBlob("r", d, chunked);
  Proxy proxy({{"upstream.test", up.url()}});
  auto r = proxy.Client()->Get("/v2/r/blobs/" + d.ToString());
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(Diff(r->body, body) == "");
  proxy.Settle();
  auto meta = proxy.store().GetBlobMeta(d);
  REQUIRE(meta.ok());
  REQUIRE(meta->has_value());
  CHECK((*meta)->complete);
  CHECK((*meta)->size == body.size());
  // Now cached: served with a Content-Length.
  auto r2 = proxy.Client()->Get("/v2/r/blobs/" + d.ToString());
  REQUIRE(r2);
  CHECK(r2->status == 200);
  CHECK(Diff(r2->body, body) == "");
  CHECK(r2->get_header_value("Content-Length") == std::to_string(body.size()));
  CHECK(up.blob_gets == 1);

  // A wrong chunked body is cut before it completes.
  const std::string good = Pattern(3000, 12);
  Digest gd = Digest::Sha256Of(good);
  chunked.body = good + "!";
  up.SetBlob("r", gd, chunked);
  auto bad = proxy.Client()->Get("/v2/r/blobs/" + gd.ToString());
  bool complete = bad && bad->status == 200 && (bad->body == good || bad->body == good + "!");
  CHECK_FALSE(complete);
  proxy.Settle();
  auto gm = proxy.store().GetBlobMeta(gd);
  REQUIRE(gm.ok());
  CHECK_FALSE(gm->has_value());
}

TEST_CASE("proxy: server coalesces concurrent clients of one blob into one upstream GET") {
  QuietLogs quiet;
  FakeRegistry up;
  const std::string body = Pattern(kChunk * 4 + 5, 13);
  Digest d = Digest::Sha256Of(body);
  auto gate = std::make_shared<Gate>();
  FakeBlob held;  // the body stops after its first piece until the gate opens
  held.body = body;
  held.gate_at = 1;
  held.gate = gate;
  up.SetBlob("r", d, held);
  Proxy proxy({{"upstream.test", up.url()}});
  const std::string path = "/v2/r/blobs/" + d.ToString();
  constexpr int kClients = 4;
  std::vector<std::string> bodies(kClients);
  std::vector<int> statuses(kClients, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      auto r = proxy.Client()->Get(path);
      if (r) {
        statuses[i] = r->status;
        bodies[i] = r->body;
      }
    });
  }
  // Open the gate once every client has joined the one fetch.
  auto deadline = SteadyClock::now() + 5s;
  auto& c = proxy.registry().counters();
  while (c.upstream_blob_fetches + c.coalesced_waiters < kClients && SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(2ms);
  }
  CHECK(c.upstream_blob_fetches == 1);
  CHECK(c.coalesced_waiters == kClients - 1);
  gate->Open();
  for (auto& t : threads) t.join();
  for (int i = 0; i < kClients; ++i) {
    CAPTURE(i);
    CHECK(statuses[i] == 200);
    CHECK(Diff(bodies[i], body) == "");
  }
  proxy.Settle();
  CHECK(up.blob_gets == 1);
}

TEST_CASE("proxy: server serves an empty blob") {
  QuietLogs quiet;
  FakeRegistry up;
  Digest d = Digest::Sha256Of("");
  up.SetBlob("r", d, "");
  Proxy proxy({{"upstream.test", up.url()}});
  const std::string path = "/v2/r/blobs/" + d.ToString();
  auto h0 = proxy.Client()->Head(path);  // not cached: an upstream HEAD
  REQUIRE(h0);
  CHECK(h0->status == 200);
  CHECK(h0->get_header_value("Content-Length") == "0");
  auto r1 = proxy.Client()->Get(path);  // a miss
  REQUIRE(r1);
  CHECK(r1->status == 200);
  CHECK(r1->body.empty());
  CHECK(r1->get_header_value("Content-Length") == "0");
  proxy.Settle();
  auto meta = proxy.store().GetBlobMeta(d);
  REQUIRE(meta.ok());
  REQUIRE(meta->has_value());
  CHECK((*meta)->complete);
  CHECK((*meta)->size == 0);
  auto r2 = proxy.Client()->Get(path);  // a hit
  REQUIRE(r2);
  CHECK(r2->status == 200);
  CHECK(r2->body.empty());
  CHECK(r2->get_header_value("Content-Length") == "0");
  auto h1 = proxy.Client()->Head(path);  // a hit
  REQUIRE(h1);
  CHECK(h1->status == 200);
  CHECK(h1->get_header_value("Content-Length") == "0");
  CHECK(up.blob_gets == 1);
}

TEST_CASE("proxy: server never completes a blob whose upstream bytes do not match") {
  QuietLogs quiet;
  FakeRegistry up;
  const std::string good = Pattern(kChunk * 2 + 50, 9);
  Digest d = Digest::Sha256Of(good);
  std::string bad = good;
  bad[kChunk + 3] ^= 0x40;
  up.SetBlob("r", d, bad);
  Proxy proxy({{"upstream.test", up.url()}});
  auto cli = proxy.Client();
  const std::string path = "/v2/r/blobs/" + d.ToString();
  auto r = cli->Get(path);
  bool complete = r && r->status == 200 && r->body.size() == good.size();
  CHECK_FALSE(complete);
  if (r) CHECK_FALSE(Diff(r->body, bad).empty());
  proxy.Settle();
  auto meta = proxy.store().GetBlobMeta(d);
  REQUIRE(meta.ok());
  CHECK_FALSE(meta->has_value());
  CHECK(up.blob_gets == 1);

  // Nothing was cached: the next request goes upstream again (and fails again).
  auto r2 = proxy.Client()->Get(path);
  bool complete2 = r2 && r2->status == 200 && r2->body.size() == good.size();
  CHECK_FALSE(complete2);
  proxy.Settle();
  CHECK(up.blob_gets == 2);

  // A Range request too: its last byte is held until the digest is confirmed.
  auto r3 = proxy.Client()->Get(path, {{"Range", "bytes=0-99"}});
  bool complete3 = r3 && r3->status == 206 && r3->body.size() == 100;
  CHECK_FALSE(complete3);
  proxy.Settle();
}

TEST_CASE("proxy: server refuses a manifest whose bytes do not match the digest asked for") {
  QuietLogs quiet;
  FakeRegistry up;
  Image img;
  const std::string real = OciManifest(img.config, img.layer, "real");
  const std::string forged = OciManifest(img.config, img.layer, "forged");
  Digest want = Digest::Sha256Of(real);
  up.SetManifest("r", want.ToString(), FakeManifest{forged, kOciManifestType, want.ToString()});
  Proxy proxy({{"upstream.test", up.url()}});
  auto cli = proxy.Client();
  const std::string path = "/v2/r/manifests/" + want.ToString();
  auto r1 = cli->Get(path);
  REQUIRE(r1);
  CHECK(r1->status == 502);
  CHECK(ErrorCode(r1) == "UPSTREAM_INVALID");
  CHECK(r1->body.find("forged") == std::string::npos);
  CHECK(up.manifest_gets == 1);
  auto r2 = cli->Get(path);
  REQUIRE(r2);
  CHECK(r2->status == 502);
  CHECK(ErrorCode(r2) == "UPSTREAM_INVALID");
  CHECK(up.manifest_gets == 2);
  auto stored = proxy.store().GetManifest(want);
  REQUIRE(stored.ok());
  CHECK_FALSE(stored->has_value());
  auto stored_forged = proxy.store().GetManifest(Digest::Sha256Of(forged));
  REQUIRE(stored_forged.ok());
  CHECK_FALSE(stored_forged->has_value());

  // Once the upstream sends the right bytes, it is served.
  up.SetManifest("r", want.ToString(), FakeManifest{real, kOciManifestType, ""});
  auto r3 = cli->Get(path);
  REQUIRE(r3);
  CHECK(r3->status == 200);
  CHECK(r3->body == real);
}

TEST_CASE("proxy: server refuses an upstream manifest over 4 MiB") {
  QuietLogs quiet;
  FakeRegistry up;
  Image img;
  // A valid-looking manifest padded past the limit with an annotation.
  std::string big = OciManifest(img.config, img.layer, std::string(portcullis::oci::kMaxManifestBytes, 'x'));
  REQUIRE(big.size() > portcullis::oci::kMaxManifestBytes);
  Digest bd = up.SetTagged("r", "big", big);
  Proxy proxy({{"upstream.test", up.url()}});
  auto cli = proxy.Client();
  auto r = cli->Get("/v2/r/manifests/big");
  REQUIRE(r);
  CHECK(r->status >= 400);
  CHECK(r->status != 200);
  CHECK(ErrorCode(r) == "MANIFEST_INVALID");
  auto rd = cli->Get("/v2/r/manifests/" + bd.ToString());
  REQUIRE(rd);
  CHECK(rd->status >= 400);
  CHECK(ErrorCode(rd) == "MANIFEST_INVALID");
  auto tag = proxy.store().GetTag("upstream.test/r:big");
  REQUIRE(tag.ok());
  CHECK_FALSE(tag->has_value());
  auto stored = proxy.store().GetManifest(bd);
  REQUIRE(stored.ok());
  CHECK_FALSE(stored->has_value());
}

TEST_CASE("proxy: server refuses a tag whose Docker-Content-Digest header lies") {
  QuietLogs quiet;
  FakeRegistry up;
  Image img;
  const std::string bytes = OciManifest(img.config, img.layer, "liar");
  Digest true_digest = Digest::Sha256Of(bytes);
  Digest claimed = Digest::Sha256Of("something else");
  up.SetManifest("r", "liar", FakeManifest{bytes, kOciManifestType, claimed.ToString()});
  Proxy proxy({{"upstream.test", up.url()}});
  auto cli = proxy.Client();
  auto r1 = cli->Get("/v2/r/manifests/liar");
  REQUIRE(r1);
  CHECK(r1->status == 502);
  CHECK(ErrorCode(r1) == "UPSTREAM_INVALID");
  CHECK(up.manifest_gets == 1);
  auto tag = proxy.store().GetTag("upstream.test/r:liar");
  REQUIRE(tag.ok());
  CHECK_FALSE(tag->has_value());
  for (const Digest& d : {true_digest, claimed}) {
    auto stored = proxy.store().GetManifest(d);
    REQUIRE(stored.ok());
    CHECK_FALSE(stored->has_value());
  }
  auto r2 = cli->Get("/v2/r/manifests/liar");
  REQUIRE(r2);
  CHECK(r2->status == 502);
  CHECK(up.manifest_gets == 2);
  // Neither digest became reachable through the proxy.
  auto byd = cli->Get("/v2/r/manifests/" + true_digest.ToString());
  REQUIRE(byd);
  CHECK(byd->status == 404);
}

TEST_CASE("proxy: server refuses writes with 405 UNSUPPORTED") {
  QuietLogs quiet;
  FakeRegistry up;
  Image img;
  img.Publish(up);
  Proxy proxy({{"upstream.test", up.url()}});
  // One connection per write: what a refused body does to a kept-alive
  // connection is the next test's business.
  auto check = [&](const std::function<httplib::Result(httplib::Client&)>& send, const std::string& what) {
    CAPTURE(what);
    auto cli = proxy.Client();
    auto r = send(*cli);
    REQUIRE(r);
    CHECK(r->status == 405);
    CHECK(ErrorCode(r) == "UNSUPPORTED");
    CHECK(r->get_header_value("Content-Type") == "application/json");
    CHECK(r->get_header_value("Docker-Distribution-API-Version") == "registry/2.0");
  };
  check([](httplib::Client& c) { return c.Post("/v2/r/blobs/uploads/"); }, "POST without body");
  check([](httplib::Client& c) { return c.Post("/v2/r/blobs/uploads/", std::string(1000, 'b'), "application/octet-stream"); },
        "POST with body");
  check([&](httplib::Client& c) { return c.Put("/v2/r/manifests/v1", img.manifest, kOciManifestType); },
        "PUT manifest");
  check([&](httplib::Client& c) {
    return c.Put("/v2/r/blobs/uploads/x?digest=" + img.layer_digest.ToString(), "", "application/octet-stream");
  }, "PUT empty");
  check([](httplib::Client& c) { return c.Patch("/v2/r/blobs/uploads/x", std::string(5000, 'p'), "application/octet-stream"); },
        "PATCH");
  check([&](httplib::Client& c) { return c.Delete("/v2/r/manifests/" + img.manifest_digest.ToString()); }, "DELETE");
  check([](httplib::Client& c) { return c.Delete("/v2/r/manifests/v1", std::string("body"), "text/plain"); },
        "DELETE with body");
  check([](httplib::Client& c) { return c.Options("/v2/"); }, "OPTIONS");
  // A body over the payload limit is refused the same way.
  check([](httplib::Client& c) { return c.Post("/v2/r/blobs/uploads/", std::string(2 << 20, 'z'), "application/octet-stream"); },
        "big POST");
  // Reads still work afterwards, and only they went upstream.
  auto after = proxy.Client()->Get("/v2/r/manifests/v1");
  REQUIRE(after);
  CHECK(after->status == 200);
  CHECK(after->body == img.manifest);
  CHECK(up.Requests().size() == 1);
}

// Sends `data` on `fd`; reads one HTTP response (headers and Content-Length
// body) within `timeout`. Returns "" on EOF/timeout before a full response.
std::string RawResponse(int fd, std::chrono::milliseconds timeout) {
  std::string got;
  auto deadline = SteadyClock::now() + timeout;
  while (SteadyClock::now() < deadline) {
    auto hdr_end = got.find("\r\n\r\n");
    if (hdr_end != std::string::npos) {
      size_t len = 0;
      auto cl = got.find("Content-Length: ");
      if (cl != std::string::npos && cl < hdr_end) len = std::stoul(got.substr(cl + 16));
      if (got.size() >= hdr_end + 4 + len) return got.substr(0, hdr_end + 4 + len);
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return "";
    got.append(buf, static_cast<size_t>(n));
  }
  return "";
}

void SendAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

TEST_CASE("proxy: server does not take a refused write's body for the next request") {
  QuietLogs quiet;
  FakeRegistry up;
  Proxy proxy({{"upstream.test", up.url()}});
  // The body is a complete request of its own; it arrives after the headers
  // (as a client that sends headers and body in separate writes does).
  const std::string body = "GET /v2/smuggled/manifests/x HTTP/1.1\r\nHost: x\r\n\r\n";
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(proxy.port()));
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  SendAll(fd, "POST /v2/r/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\n\r\n");
  // The server may answer before or after reading the body; either way the
  // body's bytes must never be taken for a request.
  SendAll(fd, body);
  std::string first = RawResponse(fd, 5s);
  CHECK(first.rfind("HTTP/1.1 405", 0) == 0);
  SendAll(fd, "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n");
  // Either the connection was closed after the 405, or the next answer is the
  // one for GET /v2/ — never one for the body's bytes.
  std::string second = RawResponse(fd, 5s);
  ::close(fd);
  {
    INFO("answer after the refused POST's body: ", second);
    CHECK((second.empty() || (second.rfind("HTTP/1.1 200", 0) == 0 && second.size() >= 2 &&
                              second.compare(second.size() - 2, 2, "{}") == 0)));
  }
  {
    auto reqs = up.Requests();
    INFO("upstream saw: ", reqs.empty() ? std::string("nothing") : reqs.front());
    CHECK(reqs.empty());
  }

  // The same through httplib::Client on one kept-alive connection, with a body
  // larger than one read buffer.
  auto cli = proxy.Client();
  auto w = cli->Post("/v2/r/blobs/uploads/", std::string(64 * 1024, 'b'), "application/octet-stream");
  REQUIRE(w);
  CHECK(w->status == 405);
  auto r = cli->Get("/v2/");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "{}");
}

TEST_CASE("proxy: server answers bad names and digests with 400, bad tags with 404, and the right code") {
  QuietLogs quiet;
  FakeRegistry up;
  Proxy proxy({{"upstream.test", up.url()}});
  auto cli = proxy.Client();
  struct Row {
    std::string path;
    int status;
    std::string code;
  };
  const std::vector<Row> rows = {
      {"/v2/Bad/manifests/v1", 400, "NAME_INVALID"},
      {"/v2/r//x/manifests/v1", 400, "NAME_INVALID"},
      {"/v2/r_/manifests/v1", 400, "NAME_INVALID"},
      {"/v2/upstream.test/Bad/blobs/" + Digest::Sha256Of("x").ToString(), 400, "NAME_INVALID"},
      {"/v2/Bad/tags/list", 400, "NAME_INVALID"},
      // A tag-shaped reference that is not a valid tag names no manifest: 404.
      {"/v2/r/manifests/-v1", 404, "MANIFEST_UNKNOWN"},
      {"/v2/r/manifests/.v1", 404, "MANIFEST_UNKNOWN"},
      {"/v2/r/manifests/.INVALID_MANIFEST_NAME", 404, "MANIFEST_UNKNOWN"},
      {"/v2/r/manifests/" + std::string(129, 't'), 404, "MANIFEST_UNKNOWN"},
      {"/v2/r/manifests/sha256:abc", 400, "DIGEST_INVALID"},
      {"/v2/r/manifests/sha256:" + std::string(64, 'G'), 400, "DIGEST_INVALID"},
      {"/v2/r/manifests/md5:" + std::string(32, 'a'), 400, "DIGEST_INVALID"},
      {"/v2/r/blobs/sha256:zz", 400, "DIGEST_INVALID"},
      {"/v2/r/blobs/notadigest", 400, "DIGEST_INVALID"},
      {"/v2/r/referrers/notadigest", 400, "DIGEST_INVALID"},
      {"/v2/r/manifests/v1?ns=nope.test", 404, "NAME_UNKNOWN"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.path);
    auto r = cli->Get(row.path);
    REQUIRE(r);
    CHECK(r->status == row.status);
    CHECK(ErrorCode(r) == row.code);
    if (row.code == "MANIFEST_UNKNOWN") {  // the message names the tag grammar
      CHECK(r->body.find("[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}") != std::string::npos);
    }
    auto h = cli->Head(row.path);
    REQUIRE(h);
    CHECK(h->status == row.status);
  }
  CHECK(up.Requests().empty());
}

TEST_CASE("proxy: server passes tags/list through with Link pointing back at the proxy") {
  QuietLogs quiet;
  FakeRegistry up;
  Proxy proxy({{"upstream.test", up.url()}, {"docker.io", up.url()}});
  auto cli = proxy.Client();

  SUBCASE("default route") {
    auto r = cli->Get("/v2/team/app/tags/list?n=2");
    REQUIRE(r);
    CHECK(r->status == 200);
    auto j = nlohmann::json::parse(r->body);
    CHECK(j["tags"] == nlohmann::json::array({"a", "b"}));
    CHECK(r->get_header_value("Link") == "</v2/team/app/tags/list?n=2&last=b>; rel=\"next\"");
    CHECK(up.Requests().back() == "GET /v2/team/app/tags/list?n=2");
  }
  SUBCASE("prefixed name: the next page keeps the prefix") {
    auto r = cli->Get("/v2/upstream.test/team/app/tags/list?n=2");
    REQUIRE(r);
    CHECK(r->status == 200);
    std::string link = r->get_header_value("Link");
    CHECK(link == "</v2/upstream.test/team/app/tags/list?n=2&last=b>; rel=\"next\"");
    // Follow it through the proxy.
    auto start = link.find('<') + 1;
    std::string next = link.substr(start, link.find('>') - start);
    auto r2 = cli->Get(next);
    REQUIRE(r2);
    CHECK(r2->status == 200);
    CHECK(nlohmann::json::parse(r2->body)["tags"] == nlohmann::json::array({"c", "d"}));
    CHECK(r2->get_header_value("Link") == "</v2/upstream.test/team/app/tags/list?n=2&last=d>; rel=\"next\"");
    auto r3 = cli->Get("/v2/upstream.test/team/app/tags/list?n=2&last=d");
    REQUIRE(r3);
    CHECK(nlohmann::json::parse(r3->body)["tags"] == nlohmann::json::array({"e"}));
    CHECK(r3->get_header_value("Link").empty());
  }
  SUBCASE("Docker Hub one-component name: library/ does not leak into the link") {
    auto r = cli->Get("/v2/docker.io/alpine/tags/list?n=3");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->get_header_value("OCI-Namespace") == "docker.io");
    CHECK(r->get_header_value("Link") == "</v2/docker.io/alpine/tags/list?n=3&last=c>; rel=\"next\"");
    auto reqs = up.Requests();
    REQUIRE_FALSE(reqs.empty());
    CHECK(reqs.back().rfind("GET /v2/library/alpine/tags/list", 0) == 0);
  }
  SUBCASE("an absolute upstream link still points back at the proxy") {
    up.absolute_links = true;
    auto r = cli->Get("/v2/upstream.test/team/app/tags/list?n=2");
    REQUIRE(r);
    CHECK(r->status == 200);
    std::string link = r->get_header_value("Link");
    CAPTURE(link);
    CHECK(link.find(up.url()) == std::string::npos);
    CHECK(link.find("/v2/upstream.test/team/app/tags/list?n=2&last=b>") != std::string::npos);
  }
  SUBCASE("?ns= is carried into the link") {
    auto r = cli->Get("/v2/alpine/tags/list?n=2&ns=docker.io");
    REQUIRE(r);
    CHECK(r->status == 200);
    std::string link = r->get_header_value("Link");
    CHECK(link == "</v2/alpine/tags/list?n=2&last=b&ns=docker.io>; rel=\"next\"");
    auto start = link.find('<') + 1;
    auto r2 = cli->Get(link.substr(start, link.find('>') - start));
    REQUIRE(r2);
    CHECK(r2->status == 200);
    CHECK(nlohmann::json::parse(r2->body)["tags"] == nlohmann::json::array({"c", "d"}));
    CHECK(up.Requests().back().rfind("GET /v2/library/alpine/tags/list", 0) == 0);
  }
}

}  // namespace
