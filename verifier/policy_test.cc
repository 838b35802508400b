// Unit tests for the Portcullis policy format: loading (and its errors), rule
// selection, accept/reject, k-of-n thresholds over distinct keys, warn mode,
// identity checks, signatures for other digests. Signatures come from a fake
// SignatureSource; keys are generated per test.
#include "verifier/policy.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "verifier/policy_test_util.h"

namespace portcullis::verifier {
namespace {

using testing::CosignPayload;
using testing::FakeSource;
using testing::JsonQuote;
using testing::TempDir;
using testing::TestKey;

const oci::Digest kImage = oci::Digest::Sha256Of("image");
const oci::Digest kOther = oci::Digest::Sha256Of("other image");

std::shared_ptr<const Policy> MustParse(const std::string& text, const std::string& base_dir = "") {
  auto p = Policy::Parse(text, "test.json", base_dir);
  REQUIRE_MESSAGE(p.ok(), p.status().ToString());
  return *p;
}

Decision MustEvaluate(const Policy& p, const std::string& name, FakeSource& src, const oci::Digest& d = kImage,
                      const std::string& tag = "") {
  auto dec = p.Evaluate(name, tag, d, src);
  REQUIRE_MESSAGE(dec.ok(), dec.status().ToString());
  return *dec;
}

struct Keys {
  TestKey a = TestKey::Make(keys::KeyType::kEcdsaP256);
  TestKey b = TestKey::Make(keys::KeyType::kEd25519);
  TestKey c = TestKey::Make(keys::KeyType::kEcdsaP384);
  std::string Json() const {
    return R"("keys":{"a":{"data":)" + JsonQuote(a.pub_pem) + R"(},"b":{"data":)" + JsonQuote(b.pub_pem) +
           R"(},"c":{"data":)" + JsonQuote(c.pub_pem) + "}}";
  }
};

TEST_CASE("policy: the example policy loads and the most specific rule decides") {
  Keys k;
  const std::string pin = kOther.ToString();
  auto p = MustParse("{" + k.Json() + R"(,"rules":[
      {"match":"registry.example/team/**","require":{"keys":["a","b"],"threshold":1},"identity":"registry.example/team/*","mode":"enforce"},
      {"match":"docker.io/library/*","require":{"keys":["b"]},"mode":"warn"},
      {"match":"docker.io/library/busybox@)" +
                     pin + R"(","action":"accept"},
      {"match":"**","action":"reject"}],"default":"reject"})");
  CHECK(p->format() == "portcullis");
  CHECK(p->version().starts_with("sha256:"));
  struct Case {
    std::string name;
    oci::Digest digest;
    std::string rule;
    bool needs_sigs;
  };
  const std::vector<Case> cases = {
      {"registry.example/team/app", kImage, "registry.example/team/**", true},
      {"registry.example/team/a/b", kImage, "registry.example/team/**", true},
      {"docker.io/library/busybox", kImage, "docker.io/library/*", true},
      {"docker.io/library/busybox", kOther, "docker.io/library/busybox@" + pin, false},
      {"docker.io/library/alpine", kOther, "docker.io/library/*", true},
      {"quay.io/x/y", kImage, "**", false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    CHECK(p->MatchedRule(c.name, "", c.digest) == c.rule);
    CHECK(p->NeedsSignatures(c.name, "", c.digest) == c.needs_sigs);
  }
  // accept by pin: no signature lookup at all
  FakeSource none;
  Decision d = MustEvaluate(*p, "docker.io/library/busybox", none, kOther);
  CHECK(d.allowed);
  CHECK(d.verdict() == "accept");
  CHECK(d.rule == "docker.io/library/busybox@" + pin);
  CHECK(none.calls == 0);
  // reject rule
  d = MustEvaluate(*p, "quay.io/x/y", none);
  CHECK(!d.allowed);
  CHECK(d.verdict() == "reject");
  CHECK(d.reason == "rejected by rule **");
  CHECK(none.calls == 0);
  CHECK(p->Explain().find("1. docker.io/library/busybox@" + pin) != std::string::npos);
}

TEST_CASE("policy: default applies when no rule matches") {
  Keys k;
  for (const auto& row : std::vector<std::pair<std::string, std::string>>{{"", "reject"},
                                                                          {R"(,"default":"reject")", "reject"},
                                                                          {R"(,"default":"accept")", "accept"},
                                                                          {R"(,"default":"warn")", "warn"}}) {
    const std::string& def = row.first;  // not a structured binding: clang 14 cannot capture one
    const std::string& verdict = row.second;
    CAPTURE(def);
    auto p = MustParse(R"({"rules":[{"match":"a.example/*","action":"accept"}])" + def + "}");
    FakeSource src;
    Decision d = MustEvaluate(*p, "b.example/x", src);
    CHECK(d.verdict() == verdict);
    CHECK(d.rule == "default");
    CHECK(d.reason.find("no rule matches b.example/x") != std::string::npos);
  }
}

TEST_CASE("policy: require accepts a signature by a listed key, refuses others precisely") {
  Keys k;
  auto p = MustParse("{" + k.Json() + R"(,"rules":[{"match":"**","require":{"keys":["a"]}}]})");
  const std::string name = "registry.example/team/app";

  FakeSource good({k.a.SignImage(name, kImage)});
  Decision d = MustEvaluate(*p, name, good);
  CHECK(d.allowed);
  CHECK(d.verdict() == "accept");
  CHECK(d.keys_matched == std::vector<std::string>{"a"});
  CHECK(d.reason == "1 of 1 keys required, 1 found (a)");
  CHECK(good.calls == 1);

  FakeSource by_b({k.b.SignImage(name, kImage)});
  d = MustEvaluate(*p, name, by_b);
  CHECK(!d.allowed);
  CHECK(d.reason == "no signature by a trusted key (1 signature found, none by a)");
  REQUIRE(d.details.size() == 1);
  CHECK(d.details[0].find("no trusted key") != std::string::npos);

  FakeSource empty;
  d = MustEvaluate(*p, name, empty);
  CHECK(!d.allowed);
  CHECK(d.reason == "no signature by a trusted key (no signatures found for " + kImage.ToString() + ")");

  // a signature by a trusted key, but for another digest (a copied .sig)
  FakeSource copied({k.a.SignImage(name, kOther)});
  d = MustEvaluate(*p, name, copied);
  CHECK(!d.allowed);
  CHECK(d.reason == "signature is for " + kOther.ToString() + ", not " + kImage.ToString());

  // a signature by a trusted key over a payload with an extra field
  std::string bad_payload = CosignPayload(name, kImage);
  bad_payload.insert(bad_payload.size() - 1, R"(,"extra":1)");
  FakeSource malformed({k.a.Sign(bad_payload)});
  d = MustEvaluate(*p, name, malformed);
  CHECK(!d.allowed);
  CHECK(d.reason.find("signature by a has an invalid payload") != std::string::npos);
  CHECK(d.reason.find("unknown key \"extra\"") != std::string::npos);

  // a tampered payload / a missing blob / no signature annotation
  FoundSignature tampered = k.a.SignImage(name, kImage);
  tampered.payload[10] = 'X';
  FoundSignature missing = k.a.SignImage(name, kImage);
  missing.payload.clear();
  missing.problem = "blob sha256:… is not in team/app";
  FoundSignature unsigned_layer = k.a.SignImage(name, kImage);
  unsigned_layer.signature_b64.clear();
  FakeSource broken({tampered, missing, unsigned_layer});
  d = MustEvaluate(*p, name, broken);
  CHECK(!d.allowed);
  CHECK(d.reason == "no signature by a trusted key (3 signatures found, none by a)");
  REQUIRE(d.details.size() == 3);
  CHECK(d.details[1].find("unusable: blob") != std::string::npos);
  CHECK(d.details[2].find("no signature annotation") != std::string::npos);

  // one good signature among bad ones is enough
  FakeSource mixed({tampered, k.b.SignImage(name, kImage), k.a.SignImage(name, kOther), k.a.SignImage(name, kImage)});
  d = MustEvaluate(*p, name, mixed);
  CHECK(d.allowed);

  // errors of the source are errors, not refusals
  FakeSource failing;
  failing.error = Status::UpstreamUnavailable("connection refused");
  auto e = p->Evaluate(name, "", kImage, failing);
  REQUIRE(!e.ok());
  CHECK(e.status().Is(Code::kUpstreamUnavailable));
  CHECK(!p->Evaluate("", "", kImage, good).ok());
}

TEST_CASE("policy: k-of-n thresholds count distinct keys") {
  Keys k;
  const std::string name = "r.example/app";
  auto two_of_three = MustParse(
      "{" + k.Json() + R"(,"rules":[{"match":"r.example/*","require":{"keys":["a","b","c"],"threshold":2}}]})");
  struct Case {
    std::string what;
    std::vector<FoundSignature> sigs;
    bool allowed;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"none", {}, false, "2 of 3 keys required, 0 found (no signatures found for " + kImage.ToString() + ")"},
      {"a only", {k.a.SignImage(name, kImage)}, false, "2 of 3 keys required, 1 found (a)"},
      {"a twice (same key counts once)",
       {k.a.SignImage(name, kImage), k.a.Sign(CosignPayload(name, kImage) + " ")},
       false,
       "2 of 3 keys required, 1 found (a)"},
      {"a and b",
       {k.a.SignImage(name, kImage), k.b.SignImage(name, kImage)},
       true,
       "2 of 3 keys required, 2 found (a, b)"},
      {"c and a",
       {k.c.SignImage(name, kImage), k.a.SignImage(name, kImage)},
       true,
       "2 of 3 keys required, 2 found (a, c)"},
      {"all three",
       {k.a.SignImage(name, kImage), k.b.SignImage(name, kImage), k.c.SignImage(name, kImage)},
       true,
       "2 of 3 keys required, 3 found (a, b, c)"},
      {"b, and c for another digest",
       {k.b.SignImage(name, kImage), k.c.SignImage(name, kOther)},
       false,
       "2 of 3 keys required, 1 found (b); signature is for " + kOther.ToString() + ", not " + kImage.ToString()},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    FakeSource src(c.sigs);
    Decision d = MustEvaluate(*two_of_three, name, src);
    CHECK(d.allowed == c.allowed);
    CHECK(d.reason == c.reason);
  }
  // Two identical signatures by one key: still one key.
  auto all = MustParse("{" + k.Json() + R"(,"rules":[{"match":"**","require":{"keys":["a","b"],"threshold":2}}]})");
  FakeSource a_twice({k.a.SignImage(name, kImage), k.a.SignImage(name, kImage)});
  Decision d = MustEvaluate(*all, name, a_twice);
  CHECK(!d.allowed);
  CHECK(d.keys_matched == std::vector<std::string>{"a"});
}

TEST_CASE("policy: warn mode serves what enforce would refuse") {
  Keys k;
  const std::string name = "docker.io/library/alpine";
  auto p = MustParse("{" + k.Json() + R"(,"rules":[
      {"match":"docker.io/library/*","require":{"keys":["b"]},"mode":"warn"},
      {"match":"docker.io/**","action":"reject","mode":"warn"},
      {"match":"quay.io/**","require":{"keys":["b"]},"mode":"enforce"}]})");
  FakeSource unsigned_src;
  Decision d = MustEvaluate(*p, name, unsigned_src);
  CHECK(d.allowed);
  CHECK(d.warn_only);
  CHECK(d.verdict() == "warn");
  CHECK(d.reason.find("no signature by a trusted key") != std::string::npos);
  FakeSource signed_src({k.b.SignImage(name, kImage)});
  d = MustEvaluate(*p, name, signed_src);
  CHECK(d.allowed);
  CHECK(!d.warn_only);
  CHECK(d.verdict() == "accept");
  d = MustEvaluate(*p, "docker.io/team/x", unsigned_src);
  CHECK(d.verdict() == "warn");
  CHECK(d.reason == "rejected by rule docker.io/**");
  d = MustEvaluate(*p, "quay.io/team/x", unsigned_src);
  CHECK(d.verdict() == "reject");
}

TEST_CASE("policy: identity checks the payload's docker-reference") {
  Keys k;
  auto p = MustParse("{" + k.Json() +
                     R"(,"rules":[{"match":"**","require":{"keys":["a"]},"identity":"registry.example/team/*"}]})");
  const std::string name = "mirror.example/team/app";
  struct Case {
    std::string identity;
    bool allowed;
  };
  const std::vector<Case> cases = {
      {"registry.example/team/app", true},
      {"registry.example/team/app:v1", true},  // a tag in the identity is ignored
      {"registry.example/other/app", false},
      {"registry.example/team/a/b", false},
      {"docker.io/library/busybox", false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.identity);
    FakeSource src({k.a.SignImage(c.identity, kImage)});
    Decision d = MustEvaluate(*p, name, src);
    CHECK(d.allowed == c.allowed);
    if (!c.allowed) {
      CHECK(d.reason.find("does not match registry.example/team/*") != std::string::npos);
    }
  }
  FakeSource busybox({k.a.SignImage("busybox", kImage)});
  Decision d = MustEvaluate(*p, name, busybox);
  CHECK(d.reason == "identity docker.io/library/busybox does not match registry.example/team/*");
  // Docker Hub identities are normalized before matching.
  auto hub = MustParse("{" + k.Json() +
                       R"(,"rules":[{"match":"**","require":{"keys":["a"]},"identity":"docker.io/library/*"}]})");
  FakeSource ggcr({k.a.SignImage("index.docker.io/library/alpine", kImage)});
  CHECK(MustEvaluate(*hub, "docker.io/library/alpine", ggcr).allowed);
}

TEST_CASE("policy: every key type verifies: ECDSA P-256/P-384, Ed25519, RSA") {
  Keys k;
  TestKey rsa = TestKey::MakeRsa();
  REQUIRE(rsa.priv->type() == keys::KeyType::kRsa);
  auto p =
      MustParse(R"({"keys":{"a":{"data":)" + JsonQuote(k.a.pub_pem) + R"(},"b":{"data":)" + JsonQuote(k.b.pub_pem) +
                R"(},"c":{"data":)" + JsonQuote(k.c.pub_pem) + R"(},"r":{"data":)" + JsonQuote(rsa.pub_pem) +
                R"(}},"rules":[{"match":"**","require":{"keys":["a","b","c","r"],"threshold":4}}]})");
  const std::string name = "x.example/a";
  FakeSource src({k.a.SignImage(name, kImage), k.b.SignImage(name, kImage), k.c.SignImage(name, kImage),
                  rsa.SignImage(name, kImage)});
  Decision d = MustEvaluate(*p, name, src);
  CHECK_MESSAGE(d.allowed, d.reason);
  CHECK(d.keys_matched == std::vector<std::string>{"a", "b", "c", "r"});
  CHECK(p->Explain().find("r: rsa, inline") != std::string::npos);
}

TEST_CASE("policy: key files resolve against the policy's folder; version covers them") {
  Keys k;
  TempDir dir;
  dir.Write("keys/a.pub", k.a.pub_pem);
  const std::string policy_path = dir.Write(
      "policy.json", R"({"keys":{"a":{"path":"keys/a.pub"}},"rules":[{"match":"**","require":{"keys":["a"]}}]})");
  auto p = Policy::LoadFile(policy_path);
  REQUIRE_MESSAGE(p.ok(), p.status().ToString());
  FakeSource src({k.a.SignImage("x.example/a", kImage)});
  CHECK(MustEvaluate(**p, "x.example/a", src).allowed);
  const std::string v1 = (*p)->version();
  CHECK((*p)->Explain().find("file " + dir.str() + "/keys/a.pub") != std::string::npos);

  dir.Write("keys/a.pub", k.b.pub_pem);  // same policy text, another key
  auto p2 = Policy::LoadFile(policy_path);
  REQUIRE(p2.ok());
  CHECK((*p2)->version() != v1);
  auto p3 = Policy::LoadFile(policy_path);
  REQUIRE(p3.ok());
  CHECK((*p3)->version() == (*p2)->version());
}

TEST_CASE("policy: broken Portcullis policies fail to load, naming the field") {
  Keys k;
  TempDir dir;
  dir.Write("a.pub", k.a.pub_pem);
  dir.Write("private.key", *k.a.priv->ToEncryptedPem("pw", keys::ScryptParams{32768, 8, 1}));
  const std::string keys = "{" + k.Json() + ",";
  struct Case {
    std::string what, text, error;
  };
  const std::vector<Case> cases = {
      {"not JSON", R"({"rules":[)", "not valid JSON"},
      {"not an object", "[]", "a policy is a JSON object"},
      {"duplicate key", R"({"rules":[],"rules":[]})", "duplicate key \"rules\""},
      {"no rules", R"({"keys":{}})", "rules: missing"},
      {"unknown top-level field", R"({"rules":[],"rulez":[]})", "unknown field \"rulez\""},
      {"unknown rule field", keys + R"("rules":[{"match":"**","action":"accept","comment":"x"}]})",
       "rules[0]: unknown field \"comment\""},
      {"unknown require field", keys + R"("rules":[{"match":"**","require":{"keys":["a"],"treshold":1}}]})",
       "rules[0].require: unknown field \"treshold\""},
      {"unknown key field", R"({"keys":{"a":{"path":"a.pub","type":"ecdsa"}},"rules":[]})",
       "keys.a: unknown field \"type\""},
      {"unknown key name", keys + R"("rules":[{"match":"**","require":{"keys":["a","zz"]}}]})",
       "rules[0].require.keys[1]: unknown key \"zz\" (defined in \"keys\": a, b, c)"},
      {"threshold too high", keys + R"("rules":[{"match":"**","require":{"keys":["a","b"],"threshold":3}}]})",
       "rules[0].require.threshold: 3 is more than the 2 listed keys"},
      {"threshold zero", keys + R"("rules":[{"match":"**","require":{"keys":["a"],"threshold":0}}]})",
       "rules[0].require.threshold: must be at least 1"},
      {"threshold not a number", keys + R"("rules":[{"match":"**","require":{"keys":["a"],"threshold":"1"}}]})",
       "rules[0].require.threshold: must be a whole number"},
      {"key listed twice", keys + R"("rules":[{"match":"**","require":{"keys":["a","a"]}}]})",
       "rules[0].require.keys[1]: key \"a\" is listed twice"},
      {"empty key list", keys + R"("rules":[{"match":"**","require":{"keys":[]}}]})", "rules[0].require.keys"},
      {"bad glob", R"({"rules":[{"match":"docker.io/lib***","action":"accept"}]})", "rules[0].match: bad pattern"},
      {"bad identity glob", keys + R"("rules":[{"match":"**","require":{"keys":["a"]},"identity":"A/B"}]})",
       "rules[0].identity: bad pattern"},
      {"identity without require", R"({"rules":[{"match":"**","action":"accept","identity":"x.example/*"}]})",
       "rules[0].identity: only a rule with \"require\""},
      {"action and require", keys + R"("rules":[{"match":"**","action":"accept","require":{"keys":["a"]}}]})",
       "rules[0]: \"action\" and \"require\" exclude each other"},
      {"neither action nor require", R"({"rules":[{"match":"**"}]})", "rules[0]: needs \"action\""},
      {"bad action", R"({"rules":[{"match":"**","action":"allow"}]})",
       "rules[0].action: must be \"accept\" or \"reject\""},
      {"bad mode", R"({"rules":[{"match":"**","action":"reject","mode":"audit"}]})", "rules[0].mode"},
      {"missing match", R"({"rules":[{"action":"reject"}]})", "rules[0]: \"match\" is missing"},
      {"duplicate pattern", R"({"rules":[{"match":"**","action":"reject"},{"match":"**","action":"accept"}]})",
       "rules[1].match: \"**\" is already the pattern of rules[0]"},
      {"bad default", R"({"rules":[],"default":"deny"})", "default: must be \"reject\", \"accept\" or \"warn\""},
      {"missing key file", R"({"keys":{"a":{"path":"nope.pub"}},"rules":[]})", "keys.a.path: "},
      {"private key as public", R"({"keys":{"a":{"path":"private.key"}},"rules":[]})",
       "keys.a.path: " + dir.str() + "/private.key: unknown PEM type"},
      {"garbage inline key", R"({"keys":{"a":{"data":"hello"}},"rules":[]})", "keys.a.data: "},
      {"path and data", R"({"keys":{"a":{"path":"a.pub","data":"x"}},"rules":[]})",
       "keys.a: needs exactly one of \"path\" and \"data\""},
      {"same key twice", R"({"keys":{"a":{"path":"a.pub"},"b":{"data":)" + JsonQuote(k.a.pub_pem) + R"(}},"rules":[]})",
       "keys.b: the same public key as keys.a"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    auto p = Policy::Parse(c.text, "p.json", dir.str());
    REQUIRE(!p.ok());
    CHECK_MESSAGE(p.status().message().find(c.error) != std::string::npos, p.status().message());
    CHECK(p.status().message().starts_with("p.json: "));
  }
  // The missing file's error names the resolved path.
  auto missing = Policy::Parse(R"({"keys":{"a":{"path":"nope.pub"}},"rules":[]})", "p.json", dir.str());
  CHECK(missing.status().message().find(dir.str() + "/nope.pub") != std::string::npos);
  auto absent = Policy::LoadFile(dir.str() + "/absent.json");
  CHECK(absent.status().Is(Code::kNotFound));
}

}  // namespace
}  // namespace portcullis::verifier
