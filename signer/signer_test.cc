// Unit tests for signer/: Go-compatible JSON bytes (payload, .sig manifest,
// config blob), docker-reference naming, and signing against an in-process fake
// registry that demands Bearer tokens and answers with relative or absolute
// upload Locations.
#include <doctest/doctest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "keys/key.h"
#include "oci/digest.h"
#include "signer/go_json.h"
#include "signer/payload.h"
#include "signer/pusher.h"
#include "signer/sig_manifest.h"
#include "signer/sign.h"
#include "oci/registry_read.h"
#include "oci/remote.h"
#include "verifier/signatures.h"

namespace portcullis::signer {
namespace {

using namespace std::chrono_literals;

const oci::Digest kDigest =
    *oci::Digest::Parse("sha256:008657da993e7e8e14f5da568576f1a54a7cc25bec507b63b3b17833c43d33f7");

TEST_CASE("signer: GoQuote escapes exactly as Go's json.Marshal") {
  struct Case {
    std::string in, want;
  };
  const std::vector<Case> cases = {
      {"", R"("")"},
      {"plain ascii 0-9 ~!@#$%^*()_+{}|:?", R"("plain ascii 0-9 ~!@#$%^*()_+{}|:?")"},
      {"quote\" backslash\\ slash/", R"("quote\" backslash\\ slash/")"},
      {"\b\f\n\r\t", R"("\b\f\n\r\t")"},
      {std::string("\x00\x01\x1f", 3), R"("\u0000\u0001\u001f")"},
      {"<script>&amp;</script>", R"("\u003cscript\u003e\u0026amp;\u003c/script\u003e")"},
      {"del\x7f", "\"del\x7f\""},
      {"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\""},
      {"\xe2\x80\xa8|\xe2\x80\xa9", R"("\u2028|\u2029")"},
      {"\xef\xbf\xbd", "\"\xef\xbf\xbd\""},                       // a real U+FFFD is kept
      {"a\xff" "b", R"("a\ufffdb")"},                              // invalid byte
      {"\xc0\xaf", R"("\ufffd\ufffd")"},                           // overlong '/'
      {"\xed\xa0\x80", R"("\ufffd\ufffd\ufffd")"},                 // UTF-16 surrogate
      {"\xe2\x82" "A", R"("\ufffd\ufffdA")"},                      // truncated sequence
      {"\xf4\x90\x80\x80", R"("\ufffd\ufffd\ufffd\ufffd")"},       // above U+10FFFF
      {"end\xe2\x82", R"("end\ufffd\ufffd")"},                     // truncated at the end
  };
  for (const Case& c : cases) {
    CAPTURE(c.in);
    CHECK(GoQuote(c.in) == c.want);
  }
}

TEST_CASE("signer: payload bytes without annotations are cosign's") {
  std::string p = BuildPayload("127.0.0.1:5000/lab/small", kDigest, {});
  CHECK(p ==
        R"({"critical":{"identity":{"docker-reference":"127.0.0.1:5000/lab/small"},"image":{"docker-manifest-digest":"sha256:008657da993e7e8e14f5da568576f1a54a7cc25bec507b63b3b17833c43d33f7"},"type":"cosign container image signature"},"optional":null})");
}

TEST_CASE("signer: payload annotations are a sorted map with Go escaping") {
  std::map<std::string, std::string> ann = {{"z", "last"}, {"git_sha", "abc123"}, {"A", "<a&b>"}, {"\xc3\xa9t\xc3\xa9", "\n"}};
  std::string p = BuildPayload("index.docker.io/library/alpine", kDigest, ann);
  CHECK(p ==
        "{\"critical\":{\"identity\":{\"docker-reference\":\"index.docker.io/library/alpine\"},\"image\":{\"docker-"
        "manifest-digest\":\"sha256:008657da993e7e8e14f5da568576f1a54a7cc25bec507b63b3b17833c43d33f7\"},\"type\":"
        "\"cosign container image signature\"},\"optional\":{\"A\":\"\\u003ca\\u0026b\\u003e\",\"git_sha\":\"abc123\","
        "\"z\":\"last\",\"\xc3\xa9t\xc3\xa9\":\"\\n\"}}");
}

TEST_CASE("signer: docker-reference follows go-containerregistry's Repository.Name()") {
  struct Case {
    std::string image, want;
  };
  const std::vector<Case> cases = {
      {"127.0.0.1:5000/lab/small:v1", "127.0.0.1:5000/lab/small"},
      {"127.0.0.1:5000/lab/small@sha256:008657da993e7e8e14f5da568576f1a54a7cc25bec507b63b3b17833c43d33f7",
       "127.0.0.1:5000/lab/small"},
      {"registry.example/team/app:1.4.2", "registry.example/team/app"},
      {"alpine", "index.docker.io/library/alpine"},
      {"alpine:3.20", "index.docker.io/library/alpine"},
      {"docker.io/alpine", "index.docker.io/library/alpine"},
      {"docker.io/library/alpine:3", "index.docker.io/library/alpine"},
      {"index.docker.io/alpine", "index.docker.io/library/alpine"},
      {"docker.io/team/app", "index.docker.io/team/app"},
      {"team/app", "index.docker.io/team/app"},
      {"registry-1.docker.io/team/app", "registry-1.docker.io/team/app"},
      {"localhost:5000/x", "localhost:5000/x"},
      {"localhost/x", "localhost/x"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.image);
    auto got = DockerReference(c.image);
    REQUIRE(got.ok());
    CHECK(*got == c.want);
  }
  CHECK(!DockerReference("UPPER/case").ok());
  CHECK(!DockerReference("").ok());
}

TEST_CASE("signer: -a annotations parse as key=value") {
  auto a = ParseAnnotations({"k=v", "eq=a=b", "k=v2", "empty="});
  REQUIRE(a.ok());
  CHECK(a->size() == 3);
  CHECK(a->at("k") == "v2");
  CHECK(a->at("eq") == "a=b");
  CHECK(a->at("empty") == "");
  CHECK(!ParseAnnotations({"novalue"}).ok());
  CHECK(!ParseAnnotations({"=v"}).ok());
}

TEST_CASE("signer: config blob bytes as ggcr writes them on cosign's empty image") {
  const std::string d1 = "sha256:2635229cafbf1a30207250549f2795cf75a06af66a95d80a3a21bca9aa4468b2";
  const std::string d2 = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
  CHECK(SigConfigBlob({d1}) ==
        R"({"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["sha256:2635229cafbf1a30207250549f2795cf75a06af66a95d80a3a21bca9aa4468b2"]},"config":{}})");
  CHECK(SigConfigBlob({d1, d2}) ==
        R"({"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"},{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["sha256:2635229cafbf1a30207250549f2795cf75a06af66a95d80a3a21bca9aa4468b2","sha256:1111111111111111111111111111111111111111111111111111111111111111"]},"config":{}})");
}

TEST_CASE("signer: .sig manifest bytes follow ggcr's v1.Manifest and round-trip") {
  SigManifest m;
  m.config = {"application/vnd.oci.image.config.v1+json", 233,
              "sha256:b231cd0ad0510b6ef481ea811df2f02b92c1d48b1185e3999384d642194ac04f", {}, {}, ""};
  GoDescriptor l;
  l.media_type = "application/vnd.dev.cosign.simplesigning.v1+json";
  l.size = 241;
  l.digest = "sha256:2635229cafbf1a30207250549f2795cf75a06af66a95d80a3a21bca9aa4468b2";
  l.annotations["dev.cosignproject.cosign/signature"] = "MEQCIA+/x==";
  l.annotations["dev.sigstore.cosign/bundle"] = "{\"a\":\"<\"}";
  m.layers.push_back(l);
  const std::string want =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":233,"digest":"sha256:b231cd0ad0510b6ef481ea811df2f02b92c1d48b1185e3999384d642194ac04f"},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":241,"digest":"sha256:2635229cafbf1a30207250549f2795cf75a06af66a95d80a3a21bca9aa4468b2","annotations":{"dev.cosignproject.cosign/signature":"MEQCIA+/x==","dev.sigstore.cosign/bundle":"{\"a\":\"\u003c\"}"}}]})";
  CHECK(MarshalSigManifest(m) == want);
  auto back = ParseSigManifest(want);
  REQUIRE(back.ok());
  CHECK(back->media_type == m.media_type);
  CHECK(back->config == m.config);
  REQUIRE(back->layers.size() == 1);
  CHECK(back->layers[0] == l);
  CHECK(MarshalSigManifest(*back) == want);
  CHECK(!ParseSigManifest("[]").ok());
  CHECK(!ParseSigManifest(R"({"schemaVersion":2,"config":{"mediaType":"x","size":1,"digest":"nope"},"layers":[]})").ok());
}

// Found by fuzz_sig_manifest (tests/fuzz/README.md, round 2): a non-string
// mediaType made ParseSigManifest throw nlohmann's type_error out of the parser
// (a registry answering this to `portcullis sign` aborted it). It is a Status now.
TEST_CASE("signer: ParseSigManifest refuses a mediaType that is not a string (fuzz crash)") {
  for (const char* body : {R"({"mediaType":1})", R"({"mediaType":{}})", R"({"mediaType":[]})",
                           R"({"mediaType":true,"config":{"mediaType":"x","size":1,"digest":"nope"},"layers":[]})"}) {
    CAPTURE(body);
    StatusOr<SigManifest> m = ParseSigManifest(body);
    REQUIRE(!m.ok());
    CHECK(m.status().message().find("mediaType is not a string") != std::string::npos);
  }
}

TEST_CASE("signer: upload URLs get ?digest= or &digest=") {
  CHECK(WithDigestQuery("/v2/r/blobs/uploads/u1", kDigest) == "/v2/r/blobs/uploads/u1?digest=sha256%3A" + kDigest.hex());
  CHECK(WithDigestQuery("http://h:1/v2/r/blobs/uploads/u1?_state=x%3D", kDigest) ==
        "http://h:1/v2/r/blobs/uploads/u1?_state=x%3D&digest=sha256%3A" + kDigest.hex());
}

// A registry for one repository "r" that requires a Bearer token (scope-bound)
// for every /v2/ request, stores blobs and manifests in memory, and answers
// POST uploads with a relative Location without a query, or an absolute one with.
class FakeRegistry {
 public:
  explicit FakeRegistry(bool absolute_locations) : absolute_(absolute_locations) {
    svr_.Get("/token", [this](const httplib::Request& req, httplib::Response& res) {
      ++token_requests;
      std::string scope = req.get_param_value("scope");
      res.set_content(R"({"token":"tok )" + scope + R"(","expires_in":300})", "application/json");
    });
    svr_.Get(R"(/v2/r/blobs/uploads/(\w+))", [this](const httplib::Request& req, httplib::Response& res) {
      if (!Authorized(req, res, true)) return;
      res.status = 204;
    });
    svr_.Get(R"(/v2/r/blobs/(sha256:[0-9a-f]{64}))", [this](const httplib::Request& req, httplib::Response& res) {
      if (!Authorized(req, res, false)) return;
      std::lock_guard<std::mutex> l(mu_);
      auto it = blobs.find(req.matches[1].str());
      if (it == blobs.end()) {
        res.status = 404;
        return;
      }
      res.set_content(it->second, "application/octet-stream");
    });
    svr_.Post("/v2/r/blobs/uploads/", [this](const httplib::Request& req, httplib::Response& res) {
      if (!Authorized(req, res, true)) return;
      std::lock_guard<std::mutex> l(mu_);
      std::string id = "u" + std::to_string(++next_upload_);
      uploads_[id] = "";
      std::string loc = "/v2/r/blobs/uploads/" + id;
      // (No %-escapes: httplib 0.11's client URL-decodes response header values.)
      if (absolute_) loc = url() + loc + "?_state=abc_-";
      res.status = 202;
      res.set_header("Location", loc);
    });
    auto append = [this](const httplib::Request& req, httplib::Response& res) {
      if (!Authorized(req, res, true)) return;
      std::lock_guard<std::mutex> l(mu_);
      std::string id = req.matches[1].str();
      if (absolute_ && req.get_param_value("_state") != "abc_-") {
        res.status = 400;
        return;
      }
      uploads_[id] += req.body;
      if (req.method == "PATCH") {
        res.status = 202;
        res.set_header("Location", "/v2/r/blobs/uploads/" + id);
        return;
      }
      std::string want = req.get_param_value("digest");
      std::string got = oci::Digest::Sha256Of(uploads_[id]).ToString();
      if (want != got) {
        res.status = 400;
        res.set_content(R"({"errors":[{"code":"DIGEST_INVALID","message":"digest mismatch"}]})", "application/json");
        return;
      }
      blobs[got] = uploads_[id];
      put_targets.push_back(req.target);
      res.status = 201;
      res.set_header("Docker-Content-Digest", got);
    };
    svr_.Put(R"(/v2/r/blobs/uploads/(\w+))", append);
    svr_.Patch(R"(/v2/r/blobs/uploads/(\w+))", append);
    svr_.Put(R"(/v2/r/manifests/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      if (!Authorized(req, res, true)) return;
      std::lock_guard<std::mutex> l(mu_);
      std::string d = oci::Digest::Sha256Of(req.body).ToString();
      manifests[req.matches[1].str()] = {req.body, req.get_header_value("Content-Type")};
      manifests[d] = manifests[req.matches[1].str()];
      ++manifest_puts;
      res.status = 201;
      res.set_header("Docker-Content-Digest", d);
    });
    svr_.Get(R"(/v2/r/manifests/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      if (!Authorized(req, res, false)) return;
      std::lock_guard<std::mutex> l(mu_);
      auto it = manifests.find(req.matches[1].str());
      if (it == manifests.end()) {
        res.status = 404;
        res.set_content(R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]})", "application/json");
        return;
      }
      if (!(req.method == "HEAD" && head_without_digest)) {
        res.set_header("Docker-Content-Digest", oci::Digest::Sha256Of(it->second.first).ToString());
      }
      res.set_content(it->second.first, it->second.second);
    });
    port_ = svr_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!svr_.is_running() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    REQUIRE(svr_.is_running());
  }
  ~FakeRegistry() {
    svr_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  std::atomic<int> token_requests{0};
  std::atomic<int> manifest_puts{0};
  bool head_without_digest = false;
  std::map<std::string, std::string> blobs;
  std::map<std::string, std::pair<std::string, std::string>> manifests;  // ref -> bytes, type
  std::vector<std::string> put_targets;

 private:
  bool Authorized(const httplib::Request& req, httplib::Response& res, bool write) {
    std::string want = write ? "Bearer tok repository:r:pull,push" : "";
    std::string got = req.get_header_value("Authorization");
    bool ok = write ? got == want : got.rfind("Bearer tok repository:r:pull", 0) == 0;
    if (ok) return true;
    res.status = 401;
    res.set_header("WWW-Authenticate", "Bearer realm=\"" + url() + "/token\",service=\"fake\",scope=\"repository:r:pull\"");
    res.set_content(R"({"errors":[{"code":"UNAUTHORIZED","message":"token"}]})", "application/json");
    return false;
  }

  bool absolute_;
  httplib::Server svr_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  int next_upload_ = 0;
  std::map<std::string, std::string> uploads_;
};

oci::Remote RemoteFor(const std::string& url) {
  oci::Remote r;
  r.base = *oci::ParseUrl(url);
  r.client = std::make_unique<oci::RegistryClient>(r.base, std::nullopt, r.client_options);
  return r;
}

TEST_CASE("signer: sign, re-sign, second key, then verify through a Bearer-token registry") {
  for (bool absolute : {false, true}) {
    CAPTURE(absolute);
    FakeRegistry reg(absolute);
    oci::Remote remote = RemoteFor(reg.url());
    Pusher pusher(remote, "r");
    auto k1 = keys::PrivateKey::Generate(keys::KeyType::kEcdsaP256);
    auto k2 = keys::PrivateKey::Generate(keys::KeyType::kEd25519);
    REQUIRE(k1.ok());
    REQUIRE(k2.ok());
    SignRequest req;
    req.docker_reference = "127.0.0.1:1/r";
    req.annotations = {{"k", "v"}};

    auto s1 = SignDigest(pusher, kDigest, req, *k1);
    REQUIRE_MESSAGE(s1.ok(), s1.status().ToString());
    CHECK(s1->layer_added);
    CHECK(s1->signature_layers == 1);
    CHECK(s1->signature_tag == "sha256-" + kDigest.hex() + ".sig");
    const std::string payload = BuildPayload("127.0.0.1:1/r", kDigest, req.annotations);
    CHECK(reg.blobs.at(oci::Digest::Sha256Of(payload).ToString()) == payload);
    if (absolute) {
      for (const auto& t : reg.put_targets) CHECK(t.find("?_state=abc_-&digest=sha256%3A") != std::string::npos);
    } else {
      for (const auto& t : reg.put_targets) CHECK(t.find("/v2/r/blobs/uploads/u") == 0);
    }

    auto again = SignDigest(pusher, kDigest, req, *k1);
    REQUIRE(again.ok());
    CHECK(!again->layer_added);
    CHECK(again->signature_manifest_digest == s1->signature_manifest_digest);
    CHECK(reg.manifest_puts == 1);

    SignRequest other = req;
    other.annotations["k"] = "different";
    auto s2 = SignDigest(pusher, kDigest, req, *k2);
    REQUIRE(s2.ok());
    CHECK(s2->layer_added);
    CHECK(s2->signature_layers == 2);
    auto s3 = SignDigest(pusher, kDigest, other, *k1);  // same key, other payload: a new layer
    REQUIRE(s3.ok());
    CHECK(s3->layer_added);
    CHECK(s3->signature_layers == 3);

    const auto& [sig_bytes, sig_type] = reg.manifests.at(s1->signature_tag);
    CHECK(sig_type == "application/vnd.oci.image.manifest.v1+json");
    auto sig = ParseSigManifest(sig_bytes);
    REQUIRE(sig.ok());
    std::vector<std::string> ids;
    for (const auto& l : sig->layers) ids.push_back(l.digest);
    CHECK(reg.blobs.at(sig->config.digest) == SigConfigBlob(ids));

    auto found = verifier::FindSignatures(*remote.client, "r", kDigest);
    REQUIRE_MESSAGE(found.ok(), found.status().ToString());
    REQUIRE(found->size() == 3);
    auto pub1 = k1->GetPublicKey();
    REQUIRE(pub1.ok());
    auto report = verifier::VerifySignatures(*found, *pub1, kDigest);
    CHECK(report.verified.size() == 2);
    CHECK(report.rejected.size() == 1);
    auto wrong_digest = verifier::VerifySignatures(
        *found, *pub1, oci::Digest::Sha256Of("another image"));
    CHECK(wrong_digest.verified.empty());
    CHECK(reg.token_requests >= 1);
  }
}

TEST_CASE("signer: ResolveDigest falls back to GET + sha256 when HEAD has no Docker-Content-Digest") {
  FakeRegistry reg(false);
  oci::Remote remote = RemoteFor(reg.url());
  const std::string m = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"})";
  reg.manifests["v1"] = {m, "application/vnd.oci.image.manifest.v1+json"};
  auto d = oci::ResolveDigest(*remote.client, "r", "v1");
  REQUIRE(d.ok());
  CHECK(*d == oci::Digest::Sha256Of(m));
  reg.head_without_digest = true;
  d = oci::ResolveDigest(*remote.client, "r", "v1");
  REQUIRE(d.ok());
  CHECK(*d == oci::Digest::Sha256Of(m));
  auto missing = oci::ResolveDigest(*remote.client, "r", "nope");
  CHECK(missing.status().Is(Code::kManifestUnknown));
}

}  // namespace
}  // namespace portcullis::signer
