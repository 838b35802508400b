// Unit tests for containers-policy.json: scope precedence, insecureAcceptAnything,
// reject, sigstoreSigned with each key source, every signedIdentity type, and the
// requirements Portcullis refuses at load.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "oci/base64.h"
#include "verifier/policy.h"
#include "verifier/policy_test_util.h"

namespace portcullis::verifier {
namespace {

using testing::FakeSource;
using testing::JsonQuote;
using testing::TempDir;
using testing::TestKey;

const oci::Digest kImage = oci::Digest::Sha256Of("image");
const oci::Digest kOther = oci::Digest::Sha256Of("other image");

std::shared_ptr<const Policy> MustParse(const std::string& text, const std::string& base_dir = "") {
  auto p = Policy::Parse(text, "policy.json", base_dir);
  REQUIRE_MESSAGE(p.ok(), p.status().ToString());
  return *p;
}

Decision MustEvaluate(const Policy& p, const std::string& name, const std::string& tag, FakeSource& src,
                      const oci::Digest& d = kImage) {
  auto dec = p.Evaluate(name, tag, d, src);
  REQUIRE_MESSAGE(dec.ok(), dec.status().ToString());
  return *dec;
}

std::string KeyData(const TestKey& k) { return JsonQuote(oci::Base64Encode(k.pub_pem)); }

TEST_CASE("policy: containers-policy scopes, most specific wins") {
  const std::string accept = R"([{"type":"insecureAcceptAnything"}])";
  const std::string pinned = "docker.io/library/busybox@" + kOther.ToString();
  const std::string all_scopes = R"({"default":[{"type":"reject"}],"transports":{"docker":{
      "docker.io/library/busybox:1.36":)" +
                                 accept + R"(,
      ")" + pinned + R"(":)" + accept +
                                 R"(,
      "docker.io/library/busybox":)" +
                                 accept + R"(,
      "docker.io/library":)" + accept +
                                 R"(,
      "docker.io":)" + accept + R"(,
      "registry.example.com:5000/ns":)" +
                                 accept + R"(,
      "*.example.com":)" + accept +
                                 R"(,
      "*.com":)" + accept + R"(,
      "":)" + accept + R"(},
    "atomic":{"":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/nonexistent"}]}}})";
  auto p = MustParse(all_scopes);
  CHECK(p->format() == "containers-policy");
  struct Case {
    std::string name, tag;
    oci::Digest digest;
    std::string scope;  // "" key → transports.docker[""]; "-" → default
  };
  const std::vector<Case> cases = {
      {"docker.io/library/busybox", "1.36", kImage, "docker.io/library/busybox:1.36"},
      {"docker.io/library/busybox", "latest", kImage, "docker.io/library/busybox"},
      {"docker.io/library/busybox", "", kOther, pinned},
      {"docker.io/library/busybox", "", kImage, "docker.io/library/busybox"},
      {"docker.io/library/alpine", "3.20", kImage, "docker.io/library"},
      {"docker.io/team/app", "v1", kImage, "docker.io"},
      {"index.docker.io/team/app", "v1", kImage, "docker.io"},  // normalized like docker/reference
      {"registry.example.com:5000/ns/app", "v1", kImage, "registry.example.com:5000/ns"},
      {"registry.example.com:5000/other/app", "v1", kImage, "*.example.com"},  // wildcards ignore the port
      {"a.b.example.com/x", "v1", kImage, "*.example.com"},
      {"other.com/x", "v1", kImage, "*.com"},
      {"quay.io/x/y", "v1", kImage, ""},
      {"127.0.0.1:5000/lab/small", "v1", kImage, ""},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    CAPTURE(c.tag);
    CHECK(p->MatchedRule(c.name, c.tag, c.digest) == "transports.docker[" + JsonQuote(c.scope) + "]");
    CHECK(!p->NeedsSignatures(c.name, c.tag, c.digest));
  }
  // Without the "" scope, unmatched names fall to the global default.
  auto q = MustParse(R"({"default":[{"type":"reject"}],"transports":{"docker":{"docker.io":)" + accept + "}}}");
  CHECK(q->MatchedRule("quay.io/x/y", "v1", kImage) == "default");
  FakeSource src;
  Decision d = MustEvaluate(*q, "quay.io/x/y", "v1", src);
  CHECK(!d.allowed);
  CHECK(d.reason == "rejected by default (reject)");
  d = MustEvaluate(*q, "docker.io/library/alpine", "v1", src);
  CHECK(d.allowed);
  CHECK(d.reason == "accepted by transports.docker[\"docker.io\"] (insecureAcceptAnything)");
  CHECK(src.calls == 0);
  CHECK(p->Explain().find("transports.atomic is ignored") != std::string::npos);
}

TEST_CASE("policy: containers-policy insecureAcceptAnything and reject") {
  auto p = MustParse(R"({"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{
      "bad.example":[{"type":"reject"}],
      "mixed.example":[{"type":"insecureAcceptAnything"},{"type":"reject"}]}}})");
  FakeSource src;
  CHECK(MustEvaluate(*p, "good.example/a", "v1", src).verdict() == "accept");
  Decision d = MustEvaluate(*p, "bad.example/a", "v1", src);
  CHECK(d.verdict() == "reject");
  CHECK(d.reason == "rejected by transports.docker[\"bad.example\"] (reject)");
  CHECK(MustEvaluate(*p, "mixed.example/a", "", src).verdict() == "reject");  // every requirement must hold
  CHECK(src.calls == 0);
}

TEST_CASE("policy: containers-policy never reads a dotless registry name as a Docker Hub namespace (review M3)") {
  // A proxy upstream named "internal" is a registry of its own: docker.io scopes
  // must not govern it.
  auto p = MustParse(R"({"default":[{"type":"reject"}],"transports":{"docker":{
      "docker.io":[{"type":"insecureAcceptAnything"}]}}})");
  FakeSource src;
  Decision d = MustEvaluate(*p, "internal/team/app", "v1", src);
  CHECK(d.verdict() == "reject");
  CHECK(d.rule == "default");
  CHECK(p->MatchedRule("internal/team/app", "", kImage) == "default");
  CHECK(MustEvaluate(*p, "docker.io/library/alpine", "3.20", src).verdict() == "accept");
  // Docker Hub's own names are still normalised.
  CHECK(MustEvaluate(*p, "docker.io/alpine", "3.20", src).verdict() == "accept");
}

TEST_CASE("policy: decisions that depend on the tag, and policies that accept everything") {
  auto open = MustParse(R"({"default":[{"type":"insecureAcceptAnything"}]})");
  CHECK(open->DecisionDependsOnTag());
  CHECK(open->AcceptsEverything());
  auto scoped = MustParse(R"({"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{
      "r.example/a:debug":[{"type":"reject"}]}}})");
  CHECK_FALSE(scoped->AcceptsEverything());
  auto portcullis = Policy::Parse(R"({"rules":[{"match":"**","action":"accept"}],"default":"accept"})", "p.json", "");
  REQUIRE(portcullis.ok());
  CHECK_FALSE((*portcullis)->DecisionDependsOnTag());
  CHECK((*portcullis)->AcceptsEverything());
  auto warns = Policy::Parse(R"({"rules":[],"default":"warn"})", "p.json", "");
  REQUIRE(warns.ok());
  CHECK((*warns)->AcceptsEverything());
  auto strict = Policy::Parse(R"({"rules":[{"match":"a.example/**","action":"accept"}],"default":"reject"})", "p.json", "");
  REQUIRE(strict.ok());
  CHECK_FALSE((*strict)->AcceptsEverything());
}

TEST_CASE("policy: containers-policy sigstoreSigned with keyPath, keyPaths, keyData, keyDatas") {
  TestKey a = TestKey::Make(keys::KeyType::kEcdsaP256), b = TestKey::Make(keys::KeyType::kEcdsaP256),
          c = TestKey::Make(keys::KeyType::kEd25519);
  TempDir dir;
  dir.Write("keys/a.pub", a.pub_pem);
  dir.Write("keys/b.pub", b.pub_pem);
  const std::string repo_id = R"(,"signedIdentity":{"type":"matchRepository"})";
  const std::vector<std::pair<std::string, std::string>> sources = {
      {"keyPath", R"("keyPath":"keys/a.pub")"},
      {"keyPath absolute", R"("keyPath":)" + JsonQuote(dir.str() + "/keys/a.pub")},
      {"keyPaths", R"("keyPaths":["keys/b.pub","keys/a.pub"])"},
      {"keyData", R"("keyData":)" + KeyData(a)},
      {"keyDatas", R"("keyDatas":[)" + KeyData(c) + "," + KeyData(a) + "]"},
  };
  const std::string name = "r.example/ns/app";
  for (const auto& source : sources) {
    const auto& what = source.first;  // not a structured binding: clang 14 cannot capture one
    const auto& src_json = source.second;
    CAPTURE(what);
    auto p =
        MustParse(R"({"default":[{"type":"reject"}],"transports":{"docker":{"r.example":[{"type":"sigstoreSigned",)" +
                      src_json + repo_id + "}]}}}",
                  dir.str());
    CHECK(p->NeedsSignatures(name, "v1", kImage));
    FakeSource good({a.SignImage(name, kImage)});
    Decision d = MustEvaluate(*p, name, "v1", good);
    CHECK_MESSAGE(d.allowed, d.reason);
    CHECK(good.calls == 1);
    REQUIRE(d.keys_matched.size() == 1);
    CHECK(d.reason == "accepted by transports.docker[\"r.example\"]: signed by " + d.keys_matched[0]);

    FakeSource other_key({TestKey::Make().SignImage(name, kImage)});
    d = MustEvaluate(*p, name, "v1", other_key);
    CHECK(!d.allowed);
    CHECK(d.reason.starts_with("no signature by a trusted key (1 signature found, none by "));

    FakeSource copied({a.SignImage(name, kOther)});
    d = MustEvaluate(*p, name, "v1", copied);
    CHECK(!d.allowed);
    CHECK(d.reason == "signature is for " + kOther.ToString() + ", not " + kImage.ToString());

    FakeSource none;
    d = MustEvaluate(*p, name, "v1", none);
    CHECK(!d.allowed);
    CHECK(d.reason == "no signature by a trusted key (no signatures found for " + kImage.ToString() + ")");
  }
  // keyPaths: either key; keyDatas labels name the entry.
  auto p = MustParse(R"({"default":[{"type":"sigstoreSigned","keyDatas":[)" + KeyData(c) + "," + KeyData(b) +
                     R"(],"signedIdentity":{"type":"matchRepository"}}]})");
  FakeSource by_c({c.SignImage(name, kImage)});
  Decision d = MustEvaluate(*p, name, "", by_c);
  CHECK(d.allowed);
  CHECK(d.keys_matched == std::vector<std::string>{"keyDatas[0]"});
  // Two sigstoreSigned requirements: both must hold.
  auto both = MustParse(R"({"default":[{"type":"sigstoreSigned","keyData":)" + KeyData(a) + repo_id +
                        R"(},{"type":"sigstoreSigned","keyData":)" + KeyData(b) + repo_id + "}]}");
  FakeSource only_a({a.SignImage(name, kImage)});
  CHECK(!MustEvaluate(*both, name, "v1", only_a).allowed);
  FakeSource a_and_b({a.SignImage(name, kImage), b.SignImage(name, kImage)});
  CHECK(MustEvaluate(*both, name, "v1", a_and_b).allowed);
  CHECK(a_and_b.calls == 1);  // signatures are looked up once
  FakeSource failing;
  failing.error = Status::UpstreamUnavailable("down");
  CHECK(both->Evaluate(name, "v1", kImage, failing).status().Is(Code::kUpstreamUnavailable));
}

TEST_CASE("policy: containers-policy signedIdentity variants") {
  TestKey k = TestKey::Make();
  const std::string name = "r.example/ns/app";
  struct Case {
    std::string identity_json;  // "" = absent (matchRepoDigestOrExact)
    std::string tag;            // "" = by digest
    std::string signed_ref;
    bool allowed;
  };
  const std::string mrdoe = R"({"type":"matchRepoDigestOrExact"})";
  const std::string exact = R"({"type":"matchExact"})";
  const std::string repo = R"({"type":"matchRepository"})";
  const std::string exref = R"({"type":"exactReference","dockerReference":"r.example/ns/app:v1"})";
  const std::string exrepo = R"({"type":"exactRepository","dockerRepository":"upstream.example/team/app"})";
  const std::string remap =
      R"({"type":"remapIdentity","prefix":"r.example/ns","signedPrefix":"upstream.example/team"})";
  const std::string at = "@" + kImage.ToString();
  const std::vector<Case> cases = {
      // default = matchRepoDigestOrExact: cosign's repository-only identity is refused (containers/image)
      {"", "v1", "r.example/ns/app", false},
      {"", "", "r.example/ns/app", false},
      {"", "v1", "r.example/ns/app:v1", true},
      {"", "v1", "r.example/ns/app:v2", false},
      {mrdoe, "", "r.example/ns/app:v2", true},  // by digest: any tag of the same repository
      {mrdoe, "", "r.example/ns/other:v2", false},
      {exact, "v1", "r.example/ns/app:v1", true},
      {exact, "v1", "r.example/ns/app", false},
      {exact, "", "r.example/ns/app" + at, true},
      {exact, "", "r.example/ns/app:v1", false},
      {repo, "v1", "r.example/ns/app", true},
      {repo, "", "r.example/ns/app:v9", true},
      {repo, "v1", "r.example/ns/other", false},
      {exref, "v1", "r.example/ns/app:v1", true},
      {exref, "v2", "r.example/ns/app:v1", true},  // the image's own tag does not matter
      {exref, "v1", "r.example/ns/app", false},
      {exrepo, "v1", "upstream.example/team/app", true},
      {exrepo, "v1", "upstream.example/team/app:v3", true},
      {exrepo, "v1", "r.example/ns/app", false},
      {remap, "v1", "upstream.example/team/app:v1", true},
      {remap, "v1", "upstream.example/team/app", false},  // then matchRepoDigestOrExact rules
      {remap, "", "upstream.example/team/app:any", true},
      {remap, "v1", "r.example/ns/app:v1", false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.identity_json);
    CAPTURE(c.tag);
    CAPTURE(c.signed_ref);
    auto p = MustParse(R"({"default":[{"type":"sigstoreSigned","keyData":)" + KeyData(k) +
                       (c.identity_json.empty() ? "" : R"(,"signedIdentity":)" + c.identity_json) + "}]}");
    FakeSource src({k.SignImage(c.signed_ref, kImage)});
    Decision d = MustEvaluate(*p, name, c.tag, src);
    CHECK_MESSAGE(d.allowed == c.allowed, d.reason);
    if (!c.allowed) CHECK(d.reason.find("identity") != std::string::npos);
  }
  auto p = MustParse(R"({"default":[{"type":"sigstoreSigned","keyData":)" + KeyData(k) + "}]}");
  FakeSource cosign({k.SignImage(name, kImage)});
  Decision d = MustEvaluate(*p, name, "v1", cosign);
  CHECK(d.reason ==
        "identity r.example/ns/app names a repository only, and signedIdentity matchRepoDigestOrExact needs a tag or "
        "digest in it (cosign signs repositories only: use {\"type\":\"matchRepository\"})");
  // Docker Hub names normalize on both sides.
  auto hub = MustParse(R"({"default":[{"type":"sigstoreSigned","keyData":)" + KeyData(k) +
                       R"(,"signedIdentity":{"type":"matchRepository"}}]})");
  FakeSource ggcr({k.SignImage("index.docker.io/library/alpine", kImage)});
  CHECK(MustEvaluate(*hub, "docker.io/library/alpine", "3.20", ggcr).allowed);
}

TEST_CASE("policy: containers-policy requirements Portcullis cannot check are refused at load") {
  TestKey k = TestKey::Make();
  TempDir dir;
  dir.Write("a.pub", k.pub_pem);
  const std::string kd = KeyData(k);
  struct Case {
    std::string what, text, error;
  };
  auto in_default = [](const std::string& req) { return R"({"default":[)" + req + "]}"; };
  auto in_scope = [](const std::string& req) {
    return R"({"default":[{"type":"reject"}],"transports":{"docker":{"docker.io/library":[)" + req + "]}}}";
  };
  const std::vector<Case> cases = {
      {"signedBy", in_default(R"({"type":"signedBy","keyType":"GPGKeys","keyPath":"/k.gpg"})"),
       "default[0]: \"signedBy\" (GPG simple signing) cannot be checked"},
      {"signedBy in a scope", in_scope(R"({"type":"signedBy","keyType":"GPGKeys","keyPath":"/k.gpg"})"),
       "transports.docker[\"docker.io/library\"][0]: \"signedBy\""},
      {"fulcio without a Rekor key",
       in_default(R"({"type":"sigstoreSigned","fulcio":{"caPath":"/c","oidcIssuer":"i","subjectEmail":"e"}})"),
       "must be specified if fulcio is used"},
      {"fulcio with caPath and caData",
       in_default(
           R"({"type":"sigstoreSigned","fulcio":{"caPath":"/c","caData":"","oidcIssuer":"i","subjectEmail":"e"},"rekorPublicKeyData":)" +
           kd + "}"),
       "default[0].fulcio: caPath and caData cannot be used simultaneously"},
      {"fulcio CA file without certificates",
       in_default(R"({"type":"sigstoreSigned","fulcio":{"caPath":"a.pub","oidcIssuer":"i"},"rekorPublicKeyData":)" +
                  kd + "}"),
       "default[0].fulcio.caPath: error loading Fulcio CA certificates"},
      {"fulcio with an unknown field",
       in_default(R"({"type":"sigstoreSigned","fulcio":{"caPath":"/c","oidcIssuer":"i","subjectEmail":"e","x":1},"rekorPublicKeyData":)" +
                  kd + "}"),
       "default[0].fulcio: unknown field \"x\""},
      {"fulcio and a key",
       in_default(R"({"type":"sigstoreSigned","keyPath":"a.pub","fulcio":{"caPath":"/c","oidcIssuer":"i","subjectEmail":"e"}})"),
       "more than one is present"},
      {"two Rekor key sources",
       in_default(R"({"type":"sigstoreSigned","keyPath":"a.pub","rekorPublicKeyPath":"a.pub","rekorPublicKeyData":)" +
                  kd + "}"),
       "at most one of rekorPublicKeyPath"},
      {"a missing Rekor key file", in_default(R"({"type":"sigstoreSigned","keyPath":"a.pub","rekorPublicKeyPath":"/r.pub"})"),
       "default[0].rekorPublicKeyPath: "},
      {"an empty rekorPublicKeyPaths", in_default(R"({"type":"sigstoreSigned","keyPath":"a.pub","rekorPublicKeyPaths":[]})"),
       "default[0].rekorPublicKeyPaths: must be a non-empty array"},
      {"pki", in_default(R"({"type":"sigstoreSigned","pki":{"caRootsPath":"/r"}})"), "default[0].pki"},
      {"unknown type", in_default(R"({"type":"signedByMagic"})"),
       "default[0].type: unknown requirement type \"signedByMagic\""},
      {"unknown type elsewhere", R"({"default":[{"type":"reject"}],"transports":{"dir":{"":[{"type":"magic"}]}}})",
       "transports.dir[\"\"][0].type: unknown requirement type"},
      {"signedBaseLayer", in_default(R"({"type":"signedBaseLayer","baseLayerIdentity":{"type":"matchExact"}})"),
       "not supported"},
      {"unknown top-level field", R"({"default":[{"type":"reject"}],"transport":{}})", "unknown field \"transport\""},
      {"missing default", R"({"transports":{"docker":{}}})", "default: missing"},
      {"empty default", R"({"default":[]})", "default: the list of requirements must not be empty"},
      {"empty scope list", R"({"default":[{"type":"reject"}],"transports":{"docker":{"x.io":[]}}})",
       "transports.docker[\"x.io\"]: the list of requirements must not be empty"},
      {"extra field on reject", in_default(R"({"type":"reject","why":"x"})"), "default[0]: unknown field \"why\""},
      {"extra field on sigstoreSigned",
       in_default(R"({"type":"sigstoreSigned","keyData":)" + kd + R"(,"keyType":"x"})"),
       "default[0]: unknown field \"keyType\""},
      {"no key", in_default(R"({"type":"sigstoreSigned"})"), "exactly one of keyPath, keyPaths, keyData, keyDatas and fulcio"},
      {"two keys", in_default(R"({"type":"sigstoreSigned","keyPath":"a.pub","keyData":)" + kd + "}"),
       "more than one is present"},
      {"empty keyPaths", in_default(R"({"type":"sigstoreSigned","keyPaths":[]})"), "default[0].keyPaths"},
      {"missing key file", in_default(R"({"type":"sigstoreSigned","keyPath":"missing.pub"})"),
       "default[0].keyPath: " + dir.str() + "/missing.pub"},
      {"missing file in keyPaths", in_default(R"({"type":"sigstoreSigned","keyPaths":["a.pub","gone.pub"]})"),
       "default[0].keyPaths[1]: "},
      {"keyData not base64", in_default(R"({"type":"sigstoreSigned","keyData":"-----BEGIN PUBLIC KEY-----"})"),
       "default[0].keyData: is not standard base64"},
      {"keyData not a key", in_default(R"({"type":"sigstoreSigned","keyData":")" + oci::Base64Encode("hello") + "\"}"),
       "default[0].keyData: "},
      {"keyDatas entry bad", in_default(R"({"type":"sigstoreSigned","keyDatas":[)" + kd + R"(,"!!"]})"),
       "default[0].keyDatas[1]"},
      {"unknown identity type",
       in_default(R"({"type":"sigstoreSigned","keyData":)" + kd + R"(,"signedIdentity":{"type":"matchAnything"}})"),
       "default[0].signedIdentity.type: unknown signedIdentity type"},
      {"exactReference without tag",
       in_default(R"({"type":"sigstoreSigned","keyData":)" + kd +
                  R"(,"signedIdentity":{"type":"exactReference","dockerReference":"r.example/a"}})"),
       "contains neither a tag nor a digest"},
      {"exactRepository missing field",
       in_default(R"({"type":"sigstoreSigned","keyData":)" + kd + R"(,"signedIdentity":{"type":"exactRepository"}})"),
       "\"dockerRepository\" is missing"},
      {"remapIdentity bad prefix",
       in_default(
           R"({"type":"sigstoreSigned","keyData":)" + kd +
           R"(,"signedIdentity":{"type":"remapIdentity","prefix":"a.example/x:tag","signedPrefix":"b.example"}})"),
       "prefix \"a.example/x:tag\" is not valid"},
      {"identity extra field",
       in_default(R"({"type":"sigstoreSigned","keyData":)" + kd +
                  R"(,"signedIdentity":{"type":"matchRepository","x":1}})"),
       "default[0].signedIdentity: unknown field \"x\""},
      {"bad JSON", R"({"default":[{"type":"reject"}])", "not valid JSON"},
      {"duplicate scope",
       R"({"default":[{"type":"reject"}],"transports":{"docker":{"a.io":[{"type":"reject"}],"a.io":[{"type":"reject"}]}}})",
       "duplicate key \"a.io\""},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    auto p = Policy::Parse(c.text, "policy.json", dir.str());
    REQUIRE(!p.ok());
    CHECK_MESSAGE(p.status().message().find(c.error) != std::string::npos, p.status().message());
    CHECK(p.status().message().starts_with("policy.json: "));
  }
}

TEST_CASE("policy: containers-policy explain warns about scopes that never match") {
  auto p = MustParse(R"({"default":[{"type":"reject"}],"transports":{"docker":{
      "docker.io/alpine":[{"type":"insecureAcceptAnything"}],
      "library/busybox":[{"type":"insecureAcceptAnything"}],
      "docker.io/library/alpine":[{"type":"insecureAcceptAnything"}]}}})");
  const std::string e = p->Explain();
  CHECK(e.find("docker.io/library/alpine") != std::string::npos);
  CHECK(e.find("Docker Hub official images are docker.io/library/alpine") != std::string::npos);
  CHECK(e.find("a scope starts with a registry host") != std::string::npos);
  CHECK(e.find("format: containers-policy") != std::string::npos);
}

}  // namespace
}  // namespace portcullis::verifier
