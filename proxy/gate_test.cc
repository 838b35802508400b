// Unit tests of the trust gate (proxy/gate.cc), written as the attacks of a
// party that can push to the upstream (review C1, M1, M2, M5): structure never
// decides trust, artifacts make nothing servable as an image, an index covers
// its children only by a verified signature, only while its verdict lives and
// only under the same rule, verdicts are keyed by tag where the policy looks at
// tags, and every mark expires. Signatures come from a fake source keyed by
// digest; time from a clock the test moves.
#include "proxy/gate.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "verifier/artifact_shape.h"
#include "verifier/policy_test_util.h"

namespace portcullis::proxy {
namespace {

using nlohmann::json;
using verifier::FoundSignature;
using verifier::testing::JsonQuote;
using verifier::testing::TempDir;
using verifier::testing::TestKey;

constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
const std::string kLayerType = "application/vnd.oci.image.layer.v1.tar";
const std::string kConfigType = "application/vnd.oci.image.config.v1+json";
const std::string kSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json";
const std::string kCosignType = "application/vnd.dev.cosign.artifact.sig.v1+json";

// Signatures by image digest; counts lookups.
class MapSource : public verifier::SignatureSource {
 public:
  explicit MapSource(std::map<oci::Digest, std::vector<FoundSignature>>* sigs, int* calls, Status* error)
      : sigs_(sigs), calls_(calls), error_(error) {}
  StatusOr<std::vector<FoundSignature>> Find(const oci::Digest& d) override {
    ++*calls_;
    if (!error_->ok()) return *error_;
    auto it = sigs_->find(d);
    return it == sigs_->end() ? std::vector<FoundSignature>() : it->second;
  }

 private:
  std::map<oci::Digest, std::vector<FoundSignature>>* sigs_;
  int* calls_;
  Status* error_;
};

json Desc(const std::string& media_type, const oci::Digest& d, int64_t size) {
  return {{"mediaType", media_type}, {"digest", d.ToString()}, {"size", size}};
}

struct Manifest {
  std::string bytes;
  std::string media_type;
  oci::Digest digest;
};

Manifest Make(const json& j) {
  Manifest m;
  m.bytes = j.dump();
  m.media_type = j.value("mediaType", std::string(kOciManifest));
  m.digest = oci::Digest::Sha256Of(m.bytes);
  return m;
}

const std::string kTar = std::string("evil.sh\0\0\0", 10) + std::string(500, 'x');
const oci::Digest kLayer = oci::Digest::Sha256Of(kTar);
const std::string kConfig = R"({"architecture":"amd64","os":"linux"})";
const oci::Digest kConfigDigest = oci::Digest::Sha256Of(kConfig);

json ImageJson(json extra = json::object(), const oci::Digest& layer = kLayer) {
  json j = {{"schemaVersion", 2},
            {"mediaType", kOciManifest},
            {"config", Desc(kConfigType, kConfigDigest, static_cast<int64_t>(kConfig.size()))},
            {"layers", json::array({Desc(kLayerType, layer, static_cast<int64_t>(kTar.size()))})}};
  for (auto& [k, v] : extra.items()) j[k] = v;
  return j;
}

json IndexJson(const std::vector<Manifest>& children, bool artifact_types = false) {
  json ms = json::array();
  for (const auto& c : children) {
    json d = Desc(c.media_type, c.digest, static_cast<int64_t>(c.bytes.size()));
    if (artifact_types) {
      d["artifactType"] = kCosignType;
    } else {
      d["platform"] = {{"os", "linux"}, {"architecture", "amd64"}};
    }
    ms.push_back(d);
  }
  return {{"schemaVersion", 2}, {"mediaType", kOciIndex}, {"manifests", ms}};
}

// A store, a gate and an upstream route "up.test/team/app" with a movable clock.
struct Fixture {
  TempDir dir;
  std::unique_ptr<Store> store;
  Metrics metrics;
  std::map<oci::Digest, std::vector<FoundSignature>> sigs;
  int lookups = 0;
  Status lookup_error;
  std::atomic<int64_t> now{1'000'000};
  std::unique_ptr<Gate> gate;
  Upstream upstream{"up.test", nullptr};
  Route route;
  TestKey key = TestKey::Make();

  explicit Fixture(int64_t ttl = 300, bool referenced = true) {
    int cleaned = 0;
    auto s = Store::Open(dir.str() + "/data", &cleaned);
    REQUIRE_MESSAGE(s.ok(), s.status().ToString());
    store = std::move(*s);
    Gate::Options o;
    o.verdict_ttl_seconds = ttl;
    o.blob_gate_referenced = referenced;
    o.clock = [this] { return now.load(); };
    o.signatures = [this](const Route&) -> std::unique_ptr<verifier::SignatureSource> {
      return std::make_unique<MapSource>(&sigs, &lookups, &lookup_error);
    };
    gate = std::make_unique<Gate>(store.get(), &metrics, o);
    route.upstream = &upstream;
    route.repo = "team/app";
  }

  void SetPolicy(const std::string& text) {
    auto p = verifier::Policy::Parse(text, "test.json", "");
    REQUIRE_MESSAGE(p.ok(), p.status().ToString());
    gate->SetPolicy(*p);
  }
  // Requires key "release" for up.test/team/**, plus `extra_rules` (JSON, with a leading comma).
  void RequireKey(const std::string& extra_rules = "") {
    SetPolicy(R"({"keys":{"release":{"data":)" + JsonQuote(key.pub_pem) +
              R"(}},"rules":[{"match":"up.test/team/**","require":{"keys":["release"]}})" + extra_rules +
              R"(],"default":"reject"})");
  }
  void Sign(const Manifest& m) { sigs[m.digest].push_back(key.SignImage("up.test/team/app", m.digest)); }

  // As the registry does: the manifest is in the store before the gate sees it.
  Status Check(const Manifest& m, const std::string& tag = "") {
    REQUIRE(store->PutManifest(m.digest, StoredManifest{m.media_type, m.bytes}).ok());
    return gate->CheckManifest(route, tag, m.digest, m.media_type, m.bytes, "test");
  }
  StatusOr<Gate::BlobGrant> Blob(const oci::Digest& d) { return gate->CheckBlob(route, d); }
};

bool Denied(const Status& st) { return st.Is(Code::kDenied); }
bool Denied(const StatusOr<Gate::BlobGrant>& g) { return !g.ok() && g.status().Is(Code::kDenied); }
bool Serves(const StatusOr<Gate::BlobGrant>& g) { return g.ok() && *g == Gate::BlobGrant::kServe; }

TEST_CASE("gate: fields a pusher chooses never let an unsigned image pass (review C1)") {
  Fixture f;
  f.RequireKey();
  const std::string zeros(64, '0');
  struct Case {
    const char* name;
    Manifest m;
    std::string tag;
  };
  const Manifest plain = Make(ImageJson());
  std::vector<Case> cases = {
      {"a subject", Make(ImageJson({{"subject", Desc(std::string(kOciManifest), kLayer, 2)}})), "subject"},
      {"cosign artifactType", Make(ImageJson({{"artifactType", kCosignType}})), "x"},
      {"bundle artifactType", Make(ImageJson({{"artifactType", "application/vnd.dev.sigstore.bundle.v0.3+json"}})), ""},
      {"cosign config type, tar layer",
       Make(ImageJson({{"config", Desc(kCosignType, kConfigDigest, static_cast<int64_t>(kConfig.size()))}})), ""},
      {"a .sig tag", plain, "sha256-" + plain.digest.hex() + ".sig"},
      {"an .att tag", plain, "sha256-" + plain.digest.hex() + ".att"},
      {"an .sbom tag", plain, "sha256-" + plain.digest.hex() + ".sbom"},
      {"the fallback tag", plain, "sha256-" + zeros},
      {"an index under the fallback tag", Make(IndexJson({plain})), "sha256-" + zeros},
      {"layers and Layers (Go reads the second)",
       Manifest{R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)" +
                    Desc(kConfigType, kConfigDigest, 10).dump() + R"(,"layers":[)" +
                    Desc(kSimpleSigning, kConfigDigest, 10).dump() + R"(],"Layers":[)" +
                    Desc(kLayerType, kLayer, 510).dump() + "]}",
                std::string(kOciManifest), oci::Digest()},
       ""},
  };
  for (auto& c : cases) {
    CAPTURE(c.name);
    if (c.m.digest.ToString().empty() || c.m.digest.hex().empty()) c.m.digest = oci::Digest::Sha256Of(c.m.bytes);
    Status st = f.Check(c.m, c.tag);
    CHECK_MESSAGE(Denied(st), st.ToString());
  }
  // Nothing above made the unsigned layer or the image servable.
  CHECK(Denied(f.Blob(kLayer)));
  CHECK(Denied(f.Check(plain, "v1")));
  CHECK(Denied(f.Check(plain)));
}

TEST_CASE("gate: a cosign signature manifest passes by shape; its blobs only as JSON, the image's never") {
  Fixture f;
  f.RequireKey();
  const Manifest image = Make(ImageJson());
  const std::string payload = verifier::testing::CosignPayload("up.test/team/app", image.digest);
  const oci::Digest pd = oci::Digest::Sha256Of(payload);
  json layer = Desc(kSimpleSigning, pd, static_cast<int64_t>(payload.size()));
  layer["annotations"] = {{"dev.cosignproject.cosign/signature", "MEUCIQ=="}};
  const Manifest sig = Make({{"schemaVersion", 2},
                             {"mediaType", kOciManifest},
                             {"config", Desc(kConfigType, kConfigDigest, 233)},
                             {"layers", json::array({layer})}});
  CHECK(f.Check(sig, "sha256-" + image.digest.hex() + ".sig").ok());
  CHECK(f.Check(sig, "any-tag-at-all").ok());  // the shape decides, not the tag
  auto g = f.Blob(pd);
  REQUIRE(g.ok());
  CHECK(*g == Gate::BlobGrant::kServeArtifactJson);
  CHECK(Denied(f.Blob(kLayer)));
  CHECK(Denied(f.Check(image)));

  // A signature-shaped manifest whose "payload" is the tar: the blob is granted
  // only as JSON, which the tar is not.
  const Manifest disguised = Make({{"schemaVersion", 2},
                                   {"mediaType", kOciManifest},
                                   {"config", Desc(kConfigType, kConfigDigest, 233)},
                                   {"layers", json::array({Desc(kSimpleSigning, kLayer, 510)})}});
  CHECK(f.Check(disguised).ok());
  g = f.Blob(kLayer);
  REQUIRE(g.ok());
  CHECK(*g == Gate::BlobGrant::kServeArtifactJson);
  CHECK_FALSE(verifier::IsArtifactBlob(kTar));
  CHECK(verifier::IsArtifactBlob(payload));

  // Artifact blob grants lapse with the verdict TTL and are renewed only by the
  // artifact manifest passing again (here from the store); without it, refused.
  f.now += 301;
  g = f.Blob(pd);
  REQUIRE(g.ok());
  CHECK(*g == Gate::BlobGrant::kServeArtifactJson);
  REQUIRE(f.store->DeleteManifest(sig.digest).ok());
  f.now += 301;
  CHECK(Denied(f.Blob(pd)));
}

TEST_CASE("gate: a fallback-shaped index passes, but vouches for none of its entries") {
  Fixture f;
  f.RequireKey();
  const Manifest image = Make(ImageJson());
  const Manifest lying = Make(IndexJson({image}, /*artifact_types=*/true));  // entry claims to be a signature
  CHECK(f.Check(lying, "sha256-" + std::string(64, '0')).ok());
  CHECK(Denied(f.Check(image)));
  CHECK(Denied(f.Check(image, "v1")));
  CHECK(Denied(f.Blob(kLayer)));
}

TEST_CASE("gate: a signed index covers its children while its verdict lives, unless a more specific rule decides") {
  Fixture f(/*ttl=*/60);
  const Manifest child1 = Make(ImageJson());
  const std::string tar2 = kTar + "2";
  const oci::Digest layer2 = oci::Digest::Sha256Of(tar2);
  const Manifest child2 = Make(ImageJson({}, layer2));
  const Manifest index = Make(IndexJson({child1, child2}));
  f.RequireKey(R"(,{"match":"up.test/team/app@)" + child2.digest.ToString() + R"(","action":"reject"})");
  f.Sign(index);

  CHECK(f.Check(index, "multi").ok());
  CHECK(f.Check(child1).ok());                  // covered: child1 has no signature of its own
  CHECK(Denied(f.Check(child2)));               // the digest pin still rejects it
  CHECK(Serves(f.Blob(kLayer)));                // named by child1, which passed
  CHECK(Denied(f.Blob(layer2)));                // child2 was refused

  // The TTL passes while the signature holds: a child asked for again revalidates the index.
  f.now += 61;
  CHECK(f.Check(child1).ok());
  CHECK(Serves(f.Blob(kLayer)));
  // The signature is deleted upstream: once the TTL passes, nothing of it is servable.
  f.sigs.clear();
  f.now += 61;
  CHECK(Denied(f.Check(index, "multi")));
  CHECK(Denied(f.Check(child1)));
  CHECK(Denied(f.Blob(kLayer)));
}

TEST_CASE("gate: an index that passed without a verified signature covers nothing") {
  Fixture f;
  const Manifest child = Make(ImageJson());
  const Manifest index = Make(IndexJson({child}));
  // warn mode: served, but no signature verified.
  f.SetPolicy(R"({"keys":{"release":{"data":)" + JsonQuote(f.key.pub_pem) +
              R"(}},"rules":[{"match":"up.test/team/**","require":{"keys":["release"]},"mode":"warn"}],"default":"reject"})");
  CHECK(f.Check(index).ok());
  auto mark = f.store->GetGateMark(ChildMarkKey(f.gate->policy()->version(), "up.test/team/app", child.digest));
  REQUIRE(mark.ok());
  CHECK_FALSE(mark->has_value());
  // An index accepted by an accept rule of a parent folder does not cover a
  // child that a more specific rule requires signatures for.
  f.SetPolicy(R"({"keys":{"release":{"data":)" + JsonQuote(f.key.pub_pem) +
              R"(}},"rules":[{"match":"up.test/team/app@)" + index.digest.ToString() +
              R"(","action":"accept"},{"match":"up.test/team/**","require":{"keys":["release"]}}],"default":"reject"})");
  CHECK(f.Check(index).ok());
  CHECK(Denied(f.Check(child)));
}

TEST_CASE("gate: blobs of an accepted image are servable while its signature holds, and stop once it is revoked (review M1)") {
  Fixture f(/*ttl=*/10);
  f.RequireKey();
  const Manifest image = Make(ImageJson());
  f.Sign(image);
  CHECK(f.Check(image, "v1").ok());
  CHECK(f.lookups == 1);
  CHECK(Serves(f.Blob(kLayer)));
  CHECK(Serves(f.Blob(kConfigDigest)));
  // The verdict lapses in the middle of a pull: the next blob asks the image's
  // signature again (one lookup) and the pull goes on.
  f.now += 11;
  CHECK(Serves(f.Blob(kLayer)));
  CHECK(f.lookups == 2);
  CHECK(Serves(f.Blob(kConfigDigest)));
  CHECK(f.lookups == 2);
  // Revoked upstream: once the TTL passes, neither the manifest nor its blobs.
  f.sigs.clear();
  f.now += 11;
  CHECK(Denied(f.Blob(kLayer)));
  CHECK(Denied(f.Blob(kConfigDigest)));
  CHECK(Denied(f.Check(image, "v1")));
}

TEST_CASE("gate: marks of an older version, or malformed, are not trusted") {
  Fixture f;
  f.RequireKey();
  const std::string v = f.gate->policy()->version();
  REQUIRE(f.store->PutGateMarks({BlobMarkKey(v, "up.test/team/app", kLayer)}, "").ok());  // 684bc4b wrote ""
  CHECK(Denied(f.Blob(kLayer)));
  REQUIRE(f.store->PutGateMarks({BlobMarkKey(v, "up.test/team/app", kLayer)}, "99999999999|garbage|x|").ok());
  CHECK(Denied(f.Blob(kLayer)));
}

TEST_CASE("gate: containers-policy verdicts are keyed by tag: one tag's refusal or acceptance never decides another's (review M2)") {
  const std::string policy =
      R"({"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"up.test/team/app:debug":[{"type":"reject"}]}}})";
  const Manifest image = Make(ImageJson());
  {
    Fixture f;
    f.SetPolicy(policy);
    CHECK(Denied(f.Check(image, "debug")));
    CHECK(f.Check(image, "v1").ok());
    CHECK(Denied(f.Check(image, "debug")));
  }
  {
    Fixture f;
    f.SetPolicy(policy);
    CHECK(f.Check(image, "v1").ok());
    CHECK(Denied(f.Check(image, "debug")));
    CHECK(f.Check(image).ok());  // by digest: the repository's scope
  }
}

TEST_CASE("gate: a rule that accepts without signatures serves blobs before any manifest") {
  Fixture f;
  f.SetPolicy(R"({"rules":[{"match":"up.test/team/**","action":"accept"}],"default":"reject"})");
  CHECK(Serves(f.Blob(kLayer)));
  f.route.repo = "other/app";
  CHECK(Denied(f.Blob(kLayer)));  // the default rejects there
}

TEST_CASE("gate: a signature lookup past its bounds is a refusal, not an outage (review M5)") {
  Fixture f;
  f.RequireKey();
  const Manifest image = Make(ImageJson());
  f.lookup_error = Status::LimitExceeded("signature lookup exceeded its limits: 15000 signature layers");
  Status st = f.Check(image, "v1");
  CHECK(Denied(st));
  CHECK(st.message().find("exceeded its limits") != std::string::npos);
  // A real failure of the lookup still fails closed with 503.
  f.lookup_error = Status::UpstreamUnavailable("connection refused");
  st = f.Check(Make(ImageJson({{"annotations", {{"x", "y"}}}})), "v2");
  CHECK(st.Is(Code::kUpstreamUnavailable));
}

TEST_CASE("gate: cached verdicts are reused within the TTL and survive a new gate on the same store") {
  Fixture f;
  f.RequireKey();
  const Manifest image = Make(ImageJson());
  f.Sign(image);
  CHECK(f.Check(image, "v1").ok());
  CHECK(f.Check(image, "v1").ok());
  CHECK(f.lookups == 1);
  // A second gate (a restart) reads the verdict from the store.
  Gate::Options o;
  o.clock = [&f] { return f.now.load(); };
  int lookups = 0;
  Status none;
  o.signatures = [&](const Route&) -> std::unique_ptr<verifier::SignatureSource> {
    return std::make_unique<MapSource>(&f.sigs, &lookups, &none);
  };
  Gate again(f.store.get(), &f.metrics, o);
  again.SetPolicy(f.gate->policy());
  CHECK(again.CheckManifest(f.route, "v1", image.digest, image.media_type, image.bytes, "t").ok());
  CHECK(lookups == 0);
  CHECK(again.CheckBlob(f.route, kLayer).ok());
}

TEST_CASE("gate: the in-memory check answers only what a full check accepted, for that repository, policy and time") {
  // CheckManifestCached runs on the event loop: it must never accept what the
  // full check would refuse, and it never refuses (a refusal is the worker's).
  Fixture f;
  const Manifest unsigned_image = Make(ImageJson());
  const Manifest image = Make(ImageJson({{"annotations", {{"signed", "yes"}}}}));
  // Without a policy everything passes, as in CheckManifest.
  auto open = f.gate->CheckManifestCached(f.route, "v1", unsigned_image.digest, "t");
  REQUIRE(open.has_value());
  CHECK(open->ok());

  f.RequireKey();
  // Nothing decided yet; and a refusal (cached as a verdict) is never an answer here.
  CHECK_FALSE(f.gate->CheckManifestCached(f.route, "v1", unsigned_image.digest, "t").has_value());
  CHECK(Denied(f.Check(unsigned_image, "v1")));
  CHECK_FALSE(f.gate->CheckManifestCached(f.route, "v1", unsigned_image.digest, "t").has_value());

  f.Sign(image);
  REQUIRE(f.Check(image, "v1").ok());
  auto hot = f.gate->CheckManifestCached(f.route, "v1", image.digest, "t");
  REQUIRE(hot.has_value());
  CHECK(hot->ok());

  // Another repository of the same upstream: its own verdict is needed.
  Route other = f.route;
  other.repo = "team/other";
  CHECK_FALSE(f.gate->CheckManifestCached(other, "v1", image.digest, "t").has_value());
  // A new policy version that rejects the repository: the old verdict is not its answer.
  f.SetPolicy(R"({"rules":[{"match":"up.test/team/**","action":"reject"}],"default":"reject"})");
  CHECK_FALSE(f.gate->CheckManifestCached(f.route, "v1", image.digest, "t").has_value());
  CHECK(Denied(f.Check(image, "v1")));
  CHECK_FALSE(f.gate->CheckManifestCached(f.route, "v1", image.digest, "t").has_value());
  // Back to the first policy (its verdict is still live), then past its expiry.
  f.RequireKey();
  REQUIRE(f.Check(image, "v1").ok());
  REQUIRE(f.gate->CheckManifestCached(f.route, "v1", image.digest, "t").has_value());
  f.now += 301;
  CHECK_FALSE(f.gate->CheckManifestCached(f.route, "v1", image.digest, "t").has_value());
}

TEST_CASE("gate: records of other policy versions and expired verdicts are collected (review L5)") {
  Fixture f(/*ttl=*/10);
  f.RequireKey();
  const Manifest image = Make(ImageJson());
  f.Sign(image);
  CHECK(f.Check(image, "v1").ok());
  const std::string old_version = f.gate->policy()->version();
  REQUIRE(f.store->PutGateMarks({old_version + "|up.test/team/app@" + kLayer.ToString()}, "").ok());  // 684bc4b's format
  auto kept = f.gate->CollectGarbage();
  REQUIRE(kept.ok());
  CHECK(*kept == 1);  // only the old-format mark
  CHECK(Serves(f.Blob(kLayer)));
  // A new policy version: everything of the old one goes.
  f.RequireKey(R"(,{"match":"up.test/other/**","action":"accept"})");
  auto dropped = f.gate->CollectGarbage();
  REQUIRE(dropped.ok());
  CHECK(*dropped == 3);  // the verdict and the two blob marks
  auto v = f.store->GetVerdict(VerdictKey(old_version, "up.test/team/app", image.digest, ""));
  REQUIRE(v.ok());
  CHECK_FALSE(v->has_value());
  // Expired verdicts of the current version go; marks stay a day for revalidation.
  CHECK(f.Check(image, "v1").ok());
  f.now += 11;
  dropped = f.gate->CollectGarbage();
  REQUIRE(dropped.ok());
  CHECK(*dropped == 1);
  CHECK(Serves(f.Blob(kLayer)));  // revalidated through the kept mark
  f.now += 86400 + 20;
  dropped = f.gate->CollectGarbage();
  REQUIRE(dropped.ok());
  CHECK(*dropped == 3);  // the re-evaluated verdict and both marks
}

TEST_CASE("gate: without a policy or with --blob-gate any everything passes") {
  Fixture f(300, /*referenced=*/false);
  const Manifest image = Make(ImageJson());
  CHECK(f.Check(image).ok());
  CHECK(Serves(f.Blob(kLayer)));
  f.RequireKey();
  CHECK(Serves(f.Blob(kLayer)));  // blob gate "any"
  CHECK(Denied(f.Check(image)));
}

}  // namespace
}  // namespace portcullis::proxy
