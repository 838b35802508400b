// Unit tests for verifier/discovery: signatures found through the referrers
// API, the sha256-<hex> fallback tag and the .sig tag, against an in-process
// registry that serves canned answers.
#include "verifier/discovery.h"

#include <doctest/doctest.h>
#include <httplib.h>

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "oci/http_client.h"
#include "verifier/policy.h"
#include "verifier/policy_test_util.h"

namespace portcullis::verifier {
namespace {

using namespace std::chrono_literals;
using testing::CosignPayload;
using testing::FakeSource;
using testing::JsonQuote;
using testing::TestKey;

const oci::Digest kImage = oci::Digest::Sha256Of("image");

// Serves GET/HEAD of exact paths from a table; anything else is 404.
class CannedRegistry {
 public:
  struct Answer {
    int status = 200;
    std::string content_type;
    std::string body;
  };
  CannedRegistry() {
    auto handler = [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> l(mu_);
      requests.push_back(req.method + " " + req.path);
      auto it = answers_.find(req.path);
      if (it == answers_.end()) {
        res.status = 404;
        res.set_content(R"({"errors":[{"code":"NOT_FOUND","message":"no route"}]})", "application/json");
        return;
      }
      res.status = it->second.status;
      if (req.path.find("/manifests/") != std::string::npos && it->second.status == 200) {
        res.set_header("Docker-Content-Digest", oci::Digest::Sha256Of(it->second.body).ToString());
      }
      res.set_content(it->second.body,
                      it->second.content_type.empty() ? "application/octet-stream" : it->second.content_type);
    };
    svr_.Get(".*", handler);
    port_ = svr_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!svr_.is_running() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    REQUIRE(svr_.is_running());
  }
  ~CannedRegistry() {
    svr_.stop();
    thread_.join();
  }
  void Set(const std::string& path, Answer a) {
    std::lock_guard<std::mutex> l(mu_);
    answers_[path] = std::move(a);
  }
  // Stores a blob; returns its descriptor JSON pieces.
  oci::Digest Blob(const std::string& bytes) {
    oci::Digest d = oci::Digest::Sha256Of(bytes);
    Set("/v2/r/blobs/" + d.ToString(), {200, "application/octet-stream", bytes});
    return d;
  }
  // Stores a manifest under its digest (and `tag` when given); returns the digest.
  oci::Digest Manifest(const std::string& bytes, const std::string& media_type, const std::string& tag = "") {
    oci::Digest d = oci::Digest::Sha256Of(bytes);
    Set("/v2/r/manifests/" + d.ToString(), {200, media_type, bytes});
    if (!tag.empty()) Set("/v2/r/manifests/" + tag, {200, media_type, bytes});
    return d;
  }
  oci::Url url() const { return *oci::ParseUrl("http://127.0.0.1:" + std::to_string(port_)); }
  std::vector<std::string> requests;

 private:
  httplib::Server svr_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::map<std::string, Answer> answers_;
};

std::string Desc(const std::string& media_type, const std::string& bytes, const std::string& extra = "") {
  return R"({"mediaType":")" + media_type + R"(","digest":")" + oci::Digest::Sha256Of(bytes).ToString() +
         R"(","size":)" + std::to_string(bytes.size()) + extra + "}";
}

// A cosign-style signature manifest (one simple-signing layer per signature)
// for `payload` signed by `key`. `referrer` adds artifactType + subject.
std::string SigManifest(CannedRegistry& reg, const TestKey& key, const std::string& payload, bool referrer,
                        const oci::Digest& subject = kImage, bool artifact_in_config = false) {
  reg.Blob(payload);
  const std::string config = referrer ? "{}" : R"({"architecture":"","os":""})";
  reg.Blob(config);
  const std::string sig = key.Sign(payload).signature_b64;
  std::string config_type = artifact_in_config ? std::string(kCosignSignatureArtifactType)
                            : referrer         ? "application/vnd.oci.empty.v1+json"
                                               : "application/vnd.oci.image.config.v1+json";
  std::string m = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)";
  if (referrer && !artifact_in_config) m += R"("artifactType":")" + std::string(kCosignSignatureArtifactType) + R"(",)";
  m += R"("config":)" + Desc(config_type, config) + R"(,"layers":[)" +
       Desc(std::string(kSimpleSigningMediaType), payload,
            R"(,"annotations":{"dev.cosignproject.cosign/signature":")" + sig + R"("})") +
       "]";
  if (referrer) {
    m += R"(,"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + subject.ToString() +
         R"(","size":100})";
  }
  return m + "}";
}

std::string Index(const std::vector<std::string>& descs) {
  std::string s = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)";
  for (size_t i = 0; i < descs.size(); ++i) s += (i ? "," : "") + descs[i];
  return s + "]}";
}

std::string RefDesc(const std::string& manifest, const std::string& artifact_type) {
  return Desc("application/vnd.oci.image.manifest.v1+json", manifest,
              artifact_type.empty() ? "" : R"(,"artifactType":")" + artifact_type + "\"");
}

TEST_CASE("verifier: RegistrySignatureSource reads the referrers API and the .sig tag") {
  CannedRegistry reg;
  TestKey a = TestKey::Make(), b = TestKey::Make();
  const std::string payload = CosignPayload("r.example/r", kImage);
  // .sig tag: signed by a
  reg.Manifest(SigManifest(reg, a, payload, false), "application/vnd.oci.image.manifest.v1+json",
               "sha256-" + kImage.hex() + ".sig");
  // referrers: a cosign referrer by b, one with the artifact type in its config,
  // one for another image (skipped), and an SBOM (skipped)
  const std::string by_b = SigManifest(reg, b, payload, true);
  reg.Manifest(by_b, "application/vnd.oci.image.manifest.v1+json");
  const std::string in_config = SigManifest(reg, b, payload + " ", true, kImage, true);
  reg.Manifest(in_config, "application/vnd.oci.image.manifest.v1+json");
  const std::string elsewhere = SigManifest(reg, a, payload + "  ", true, oci::Digest::Sha256Of("x"));
  reg.Manifest(elsewhere, "application/vnd.oci.image.manifest.v1+json");
  reg.Set("/v2/r/referrers/" + kImage.ToString(),
          {200, "application/vnd.oci.image.index.v1+json",
           Index({RefDesc(by_b, std::string(kCosignSignatureArtifactType)), RefDesc(in_config, ""),
                  RefDesc(elsewhere, std::string(kCosignSignatureArtifactType)),
                  RefDesc("sbom", "application/spdx+json")})});
  oci::RegistryClient client(reg.url(), std::nullopt, oci::ClientOptions());
  RegistrySignatureSource src(client, "r");
  auto found = src.Find(kImage);
  REQUIRE_MESSAGE(found.ok(), found.status().ToString());
  CHECK(src.referrers_api());
  REQUIRE(found->size() == 3);
  CHECK((*found)[0].source == "referrer " + oci::Digest::Sha256Of(by_b).ToString());
  CHECK((*found)[1].source == "referrer " + oci::Digest::Sha256Of(in_config).ToString());
  CHECK((*found)[2].source == "tag sha256-" + kImage.hex() + ".sig");
  CHECK((*found)[0].payload == payload);
  CHECK((*found)[0].problem.empty());
  // With the API present the fallback tag is not read.
  for (const std::string& r : reg.requests) CHECK(r != "GET /v2/r/manifests/sha256-" + kImage.hex());

  // The policy engine takes them from there: 2-of-2 over a and b.
  auto policy =
      Policy::Parse(R"({"keys":{"a":{"data":)" + JsonQuote(a.pub_pem) + R"(},"b":{"data":)" + JsonQuote(b.pub_pem) +
                        R"(}},"rules":[{"match":"**","require":{"keys":["a","b"],"threshold":2}}]})",
                    "p", "");
  REQUIRE(policy.ok());
  auto d = (*policy)->Evaluate("r.example/r", "", kImage, src);
  REQUIRE(d.ok());
  CHECK_MESSAGE(d->allowed, d->reason);
}

TEST_CASE("verifier: without a referrers API the sha256-<hex> fallback tag is read") {
  for (int variant = 0; variant < 3; ++variant) {
    CAPTURE(variant);
    CannedRegistry reg;
    TestKey a = TestKey::Make();
    const std::string payload = CosignPayload("r.example/r", kImage);
    const std::string m = SigManifest(reg, a, payload, true);
    reg.Manifest(m, "application/vnd.oci.image.manifest.v1+json");
    reg.Manifest(Index({RefDesc(m, std::string(kCosignSignatureArtifactType))}),
                 "application/vnd.oci.image.index.v1+json", "sha256-" + kImage.hex());
    if (variant == 1) reg.Set("/v2/r/referrers/" + kImage.ToString(), {200, "text/html", "<html>hello</html>"});
    if (variant == 2) reg.Set("/v2/r/referrers/" + kImage.ToString(), {405, "text/plain", "method not allowed"});
    oci::RegistryClient client(reg.url(), std::nullopt, oci::ClientOptions());
    RegistrySignatureSource src(client, "r");
    auto found = src.Find(kImage);
    REQUIRE_MESSAGE(found.ok(), found.status().ToString());
    CHECK(!src.referrers_api());
    REQUIRE(found->size() == 1);
    CHECK((*found)[0].source.starts_with("fallback tag sha256-" + kImage.hex() + " -> sha256:"));
    CHECK((*found)[0].payload == payload);
  }
}

TEST_CASE("verifier: RegistrySignatureSource: nothing found is empty, a failing registry is an error") {
  CannedRegistry reg;
  oci::RegistryClient client(reg.url(), std::nullopt, oci::ClientOptions());
  RegistrySignatureSource src(client, "r");
  auto none = src.Find(kImage);
  REQUIRE_MESSAGE(none.ok(), none.status().ToString());
  CHECK(none->empty());
  reg.Set("/v2/r/referrers/" + kImage.ToString(), {503, "text/plain", "busy"});
  auto down = src.Find(kImage);
  REQUIRE(!down.ok());
  CHECK(down.status().Is(Code::kUpstreamUnavailable));

  oci::RegistryClient nowhere(*oci::ParseUrl("http://127.0.0.1:1"), std::nullopt, oci::ClientOptions());
  RegistrySignatureSource unreachable(nowhere, "r");
  CHECK(unreachable.Find(kImage).status().Is(Code::kUpstreamUnavailable));
}

TEST_CASE("verifier: a signature bomb is refused within the lookup's bounds (review M5)") {
  // 15000 layers naming one payload: refused before any payload is fetched.
  CannedRegistry reg;
  TestKey a = TestKey::Make();
  const std::string payload = CosignPayload("r.example/r", kImage);
  reg.Blob(payload);
  reg.Blob("{}");
  std::string layer = Desc(std::string(kSimpleSigningMediaType), payload,
                           R"(,"annotations":{"dev.cosignproject.cosign/signature":"MEUCIQ=="})");
  std::string layers;
  for (int i = 0; i < 15000; ++i) layers += (i ? "," : "") + layer;
  const std::string bomb = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)" +
                           Desc("application/vnd.oci.image.config.v1+json", "{}") + R"(,"layers":[)" + layers + "]}";
  reg.Manifest(bomb, "application/vnd.oci.image.manifest.v1+json", "sha256-" + kImage.hex() + ".sig");
  oci::RegistryClient client(reg.url(), std::nullopt, oci::ClientOptions());
  RegistrySignatureSource src(client, "r");
  auto found = src.Find(kImage);
  REQUIRE(!found.ok());
  CHECK(found.status().Is(Code::kLimitExceeded));
  CHECK(found.status().message().find("15000 signature layers") != std::string::npos);
  size_t blob_gets = 0;
  for (const auto& r : reg.requests) blob_gets += r.find("/blobs/") != std::string::npos;
  CHECK(blob_gets == 0);

  // 100 layers with 100 distinct payloads: at most max_payloads are fetched.
  CannedRegistry reg2;
  std::string many;
  for (int i = 0; i < 100; ++i) {
    const std::string p = CosignPayload("r.example/r" + std::to_string(i), kImage);
    reg2.Blob(p);
    many += (i ? "," : "") + Desc(std::string(kSimpleSigningMediaType), p);
  }
  reg2.Blob("{}");
  reg2.Manifest(R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)" +
                    Desc("application/vnd.oci.image.config.v1+json", "{}") + R"(,"layers":[)" + many + "]}",
                "application/vnd.oci.image.manifest.v1+json", "sha256-" + kImage.hex() + ".sig");
  oci::RegistryClient client2(reg2.url(), std::nullopt, oci::ClientOptions());
  RegistrySignatureSource src2(client2, "r");
  found = src2.Find(kImage);
  REQUIRE(!found.ok());
  CHECK(found.status().Is(Code::kLimitExceeded));
  blob_gets = 0;
  for (const auto& r : reg2.requests) blob_gets += r.find("/blobs/") != std::string::npos;
  CHECK(blob_gets == LookupLimits().max_payloads);

  // The same payload named by many layers is fetched once.
  CannedRegistry reg3;
  std::string repeated;
  const std::string sig = a.Sign(payload).signature_b64;
  reg3.Blob(payload);
  reg3.Blob("{}");
  for (int i = 0; i < 50; ++i) {
    repeated += (i ? "," : "") + Desc(std::string(kSimpleSigningMediaType), payload,
                                      R"(,"annotations":{"dev.cosignproject.cosign/signature":")" + sig + R"("})");
  }
  reg3.Manifest(R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)" +
                    Desc("application/vnd.oci.image.config.v1+json", "{}") + R"(,"layers":[)" + repeated + "]}",
                "application/vnd.oci.image.manifest.v1+json", "sha256-" + kImage.hex() + ".sig");
  oci::RegistryClient client3(reg3.url(), std::nullopt, oci::ClientOptions());
  RegistrySignatureSource src3(client3, "r");
  found = src3.Find(kImage);
  REQUIRE_MESSAGE(found.ok(), found.status().ToString());
  CHECK(found->size() == 50);
  blob_gets = 0;
  for (const auto& r : reg3.requests) blob_gets += r.find("/blobs/") != std::string::npos;
  CHECK(blob_gets == 1);

  // A spent time budget stops the lookup.
  LookupLimits none;
  none.time_budget = std::chrono::milliseconds(0);
  RegistrySignatureSource late(client3, "r", "", none);
  std::this_thread::sleep_for(2ms);
  auto timed_out = late.Find(kImage);
  REQUIRE(!timed_out.ok());
  CHECK(timed_out.status().Is(Code::kLimitExceeded));
}

TEST_CASE("verifier: a lookup past its bounds is a refusal in both policy formats") {
  TestKey a = TestKey::Make();
  FakeSource src;
  src.error = Status::LimitExceeded("signature lookup exceeded its limits: too many");
  auto p = Policy::Parse(R"({"keys":{"a":{"data":)" + JsonQuote(a.pub_pem) +
                             R"(}},"rules":[{"match":"r.example/**","require":{"keys":["a"]}}],"default":"reject"})",
                         "p.json", "");
  REQUIRE(p.ok());
  auto d = (*p)->Evaluate("r.example/r", "", kImage, src);
  REQUIRE_MESSAGE(d.ok(), d.status().ToString());
  CHECK_FALSE(d->allowed);
  CHECK(d->reason.find("exceeded its limits") != std::string::npos);
  const std::string cp = R"({"default":[{"type":"sigstoreSigned","keyData":")" +
                         oci::Base64Encode(a.pub_pem) + R"(","signedIdentity":{"type":"matchRepository"}}]})";
  auto c = Policy::Parse(cp, "c.json", "");
  REQUIRE_MESSAGE(c.ok(), c.status().ToString());
  d = (*c)->Evaluate("r.example/r", "v1", kImage, src);
  REQUIRE_MESSAGE(d.ok(), d.status().ToString());
  CHECK_FALSE(d->allowed);
  CHECK(d->reason.find("exceeded its limits") != std::string::npos);
  // Any other failure stays an error (the proxy fails closed with 503).
  src.error = Status::UpstreamUnavailable("down");
  CHECK((*p)->Evaluate("r.example/r", "", kImage, src).status().Is(Code::kUpstreamUnavailable));
}

}  // namespace
}  // namespace portcullis::verifier

namespace portcullis::verifier {
namespace {

// A cosign v3 bundle referrer: artifactType and layer of the bundle media type,
// the empty config, `subject`. `declared_size` overrides the layer's size.
std::string BundleReferrer(CannedRegistry& reg, const std::string& bundle_json, const oci::Digest& subject,
                           int64_t declared_size = -1) {
  reg.Blob(bundle_json);
  reg.Blob("{}");
  std::string layer = Desc(std::string(kSigstoreBundleMediaType), bundle_json);
  if (declared_size >= 0) {
    layer = R"({"mediaType":")" + std::string(kSigstoreBundleMediaType) + R"(","digest":")" +
            oci::Digest::Sha256Of(bundle_json).ToString() + R"(","size":)" + std::to_string(declared_size) + "}";
  }
  return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":")" +
         std::string(kSigstoreBundleMediaType) + R"(","config":)" + Desc("application/vnd.oci.empty.v1+json", "{}") +
         R"(,"layers":[)" + layer +
         R"(],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + subject.ToString() +
         R"(","size":100}})";
}

TEST_CASE("verifier: cosign v3 bundle referrers are found through the referrers API and the fallback tag") {
  for (bool api : {true, false}) {
    CAPTURE(api);
    CannedRegistry reg;
    const std::string bundle = R"({"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"})";
    const std::string m = BundleReferrer(reg, bundle, kImage);
    const std::string other = BundleReferrer(reg, bundle + " ", oci::Digest::Sha256Of("x"));  // another image
    reg.Manifest(m, "application/vnd.oci.image.manifest.v1+json");
    reg.Manifest(other, "application/vnd.oci.image.manifest.v1+json");
    const std::string index = Index(
        {RefDesc(m, std::string(kSigstoreBundleMediaType)), RefDesc(other, std::string(kSigstoreBundleMediaType))});
    if (api) {
      reg.Set("/v2/r/referrers/" + kImage.ToString(), {200, "application/vnd.oci.image.index.v1+json", index});
    } else {
      reg.Manifest(index, "application/vnd.oci.image.index.v1+json", "sha256-" + kImage.hex());
    }
    oci::RegistryClient client(reg.url(), std::nullopt, oci::ClientOptions());
    RegistrySignatureSource src(client, "r");
    auto found = src.Find(kImage);
    REQUIRE_MESSAGE(found.ok(), found.status().ToString());
    REQUIRE(found->size() == 1);
    CHECK((*found)[0].bundle);
    CHECK((*found)[0].payload == bundle);
    CHECK((*found)[0].signature_b64.empty());
    CHECK((*found)[0].problem.empty());
    CHECK((*found)[0].source.find(oci::Digest::Sha256Of(m).ToString()) != std::string::npos);
  }
}

TEST_CASE(
    "verifier attack: a bundle layer over the size bound is not fetched, and too many bundles exceed the budget") {
  CannedRegistry reg;
  const std::string bundle = R"({"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"})";
  const std::string bomb = BundleReferrer(reg, bundle, kImage, static_cast<int64_t>(kMaxBundleLayerBytes) + 1);
  reg.Manifest(bomb, "application/vnd.oci.image.manifest.v1+json");
  reg.Set("/v2/r/referrers/" + kImage.ToString(), {200, "application/vnd.oci.image.index.v1+json",
                                                   Index({RefDesc(bomb, std::string(kSigstoreBundleMediaType))})});
  oci::RegistryClient client(reg.url(), std::nullopt, oci::ClientOptions());
  RegistrySignatureSource src(client, "r");
  auto found = src.Find(kImage);
  REQUIRE_MESSAGE(found.ok(), found.status().ToString());
  REQUIRE(found->size() == 1);
  CHECK((*found)[0].bundle);
  CHECK((*found)[0].payload.empty());
  CHECK((*found)[0].problem.find("over the limit") != std::string::npos);
  for (const std::string& r : reg.requests)
    CHECK(r.find("/blobs/" + oci::Digest::Sha256Of(bundle).ToString()) == std::string::npos);

  // Each bundle is a payload of the lookup budget.
  CannedRegistry many;
  std::vector<std::string> descs;
  for (int i = 0; i < 3; ++i) {
    const std::string m = BundleReferrer(many, bundle + std::string(static_cast<size_t>(i), ' '), kImage);
    many.Manifest(m, "application/vnd.oci.image.manifest.v1+json");
    descs.push_back(RefDesc(m, std::string(kSigstoreBundleMediaType)));
  }
  many.Set("/v2/r/referrers/" + kImage.ToString(), {200, "application/vnd.oci.image.index.v1+json", Index(descs)});
  oci::RegistryClient client2(many.url(), std::nullopt, oci::ClientOptions());
  LookupLimits limits;
  limits.max_payloads = 2;
  RegistrySignatureSource src2(client2, "r", "", limits);
  auto over = src2.Find(kImage);
  REQUIRE_FALSE(over.ok());
  CHECK(over.status().Is(Code::kLimitExceeded));
}

}  // namespace
}  // namespace portcullis::verifier
