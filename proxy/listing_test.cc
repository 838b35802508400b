// tags/list pagination and the referrers API of the proxy (proxy/listing.h),
// against the in-process fake upstream: one that paginates, one that ignores
// n and last (as distribution 2.8), one with and one without a referrers API.
#include "proxy/listing.h"

#include <doctest/doctest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>

#include "oci/digest.h"
#include "oci/manifest.h"
#include "proxy/fake_registry_test_util.h"
#include "proxy/proxy_test_util.h"

namespace {

using portcullis::oci::Digest;
using portcullis::proxy::PaginateTags;
using portcullis::proxy::ParseTagsQuery;
using portcullis::proxy::RewriteTagsLink;
using portcullis::proxy::TagsQuery;
using portcullis::proxy::testing::ErrorCode;
using portcullis::proxy::testing::FakeManifest;
using portcullis::proxy::testing::FakeRegistry;
using portcullis::proxy::testing::Proxy;
using portcullis::proxy::testing::QuietLogs;
using json = nlohmann::json;

const std::string kIndexType(portcullis::oci::kOciIndex);
const std::string kSigType = "application/vnd.dev.cosign.artifact.sig.v1+json";
const std::string kSbomType = "application/spdx+json";

std::string LinkTarget(const std::string& link) {
  auto start = link.find('<');
  auto end = link.find('>');
  if (start == std::string::npos || end == std::string::npos || end < start) return "";
  return link.substr(start + 1, end - start - 1);
}

json Tags(const httplib::Result& r) {
  json j = json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("tags")) return json();
  return j["tags"];
}

// A referrer descriptor of `type`, naming a made-up manifest.
json Descriptor(const std::string& type, const std::string& seed) {
  return {{"mediaType", std::string(portcullis::oci::kOciManifest)},
          {"digest", Digest::Sha256Of(seed).ToString()},
          {"size", 100},
          {"artifactType", type}};
}

TEST_CASE("proxy: ParseTagsQuery accepts non-negative integers only") {
  CHECK_FALSE(ParseTagsQuery(std::nullopt, std::nullopt)->n.has_value());
  CHECK(*ParseTagsQuery(std::string("0"), std::nullopt)->n == 0);
  CHECK(*ParseTagsQuery(std::string("25"), std::string("x"))->n == 25);
  CHECK(*ParseTagsQuery(std::string("99999999999999999999999999"), std::nullopt)->n == 1000000000);
  for (const char* bad : {"", "-1", "+1", "1.5", "abc", "1e3", " 1", "0x10"}) {
    CAPTURE(bad);
    auto q = ParseTagsQuery(std::string(bad), std::nullopt);
    REQUIRE_FALSE(q.ok());
    CHECK(q.status().code() == portcullis::Code::kInvalidArgument);
  }
}

TEST_CASE("proxy: PaginateTags cuts an unpaginated answer and links the next page") {
  const std::string body = R"({"name":"r","tags":["a","b","c","d","e"]})";
  TagsQuery q;
  q.n = 2;
  auto p = PaginateTags(body, q, "/v2/x/r/tags/list", "&ns=y");
  REQUIRE(p);
  CHECK(json::parse(p->body) == json::parse(R"({"name":"r","tags":["a","b"]})"));
  CHECK(p->link == "</v2/x/r/tags/list?n=2&last=b&ns=y>; rel=\"next\"");
  q.last = "b";
  p = PaginateTags(body, q, "/v2/r/tags/list", "");
  REQUIRE(p);
  CHECK(json::parse(p->body)["tags"] == json::array({"c", "d"}));
  CHECK(p->link == "</v2/r/tags/list?n=2&last=d>; rel=\"next\"");
  q.last = "d";
  p = PaginateTags(body, q, "/v2/r/tags/list", "");
  REQUIRE(p);
  CHECK(json::parse(p->body)["tags"] == json::array({"e"}));
  CHECK(p->link.empty());
  // An unsorted list (distribution 2.8 lists tags in storage order) is paged in lexical order.
  q = TagsQuery{};
  q.n = 2;
  p = PaginateTags(R"({"name":"r","tags":["c","e","a","d","b"]})", q, "/v2/r/tags/list", "");
  REQUIRE(p);
  CHECK(json::parse(p->body)["tags"] == json::array({"a", "b"}));
  CHECK(p->link == "</v2/r/tags/list?n=2&last=b>; rel=\"next\"");
  q.n = 10;
  p = PaginateTags(R"({"name":"r","tags":["c","e","a","d","b"]})", q, "/v2/r/tags/list", "");
  REQUIRE(p);
  CHECK(json::parse(p->body)["tags"] == json::array({"a", "b", "c", "d", "e"}));
  CHECK(p->link.empty());
  // Nothing to change, or nothing that can be read: the upstream's answer stands.
  q = TagsQuery{};
  q.n = 5;
  CHECK_FALSE(PaginateTags(body, q, "/v2/r/tags/list", ""));
  CHECK_FALSE(PaginateTags("not json", q, "/v2/r/tags/list", ""));
  CHECK_FALSE(PaginateTags(R"({"name":"r","tags":null})", q, "/v2/r/tags/list", ""));
  CHECK_FALSE(PaginateTags(R"({"name":"r","tags":[1,2,3,4,5,6]})", q, "/v2/r/tags/list", ""));
  CHECK_FALSE(PaginateTags(R"(["a","b"])", q, "/v2/r/tags/list", ""));
  // n=0: no tags, no next page.
  q.n = 0;
  p = PaginateTags(body, q, "/v2/r/tags/list", "");
  REQUIRE(p);
  CHECK(json::parse(p->body)["tags"] == json::array());
  CHECK(p->link.empty());
}

TEST_CASE("proxy: RewriteTagsLink adds ns= with the right separator") {
  CHECK(RewriteTagsLink("</v2/library/a/tags/list?n=1&last=x>; rel=\"next\"", "library/a", "a", "docker.io") ==
        "</v2/a/tags/list?n=1&last=x&ns=docker.io>; rel=\"next\"");
  CHECK(RewriteTagsLink("</v2/library/a/tags/list>; rel=\"next\"", "library/a", "a", "docker.io") ==
        "</v2/a/tags/list?ns=docker.io>; rel=\"next\"");
  CHECK(RewriteTagsLink("<https://up.example/v2/r/tags/list?n=1&last=x>; rel=\"next\"", "r", "up.test/r", "") ==
        "</v2/up.test/r/tags/list?n=1&last=x>; rel=\"next\"");
}

TEST_CASE("proxy: tags/list pages an upstream that ignores n and last") {
  QuietLogs quiet;
  FakeRegistry up;
  up.ignore_pagination = true;
  Proxy proxy({{"upstream.test", up.url()}, {"docker.io", up.url()}});
  auto cli = proxy.Client();

  SUBCASE("walk the pages under a prefixed name") {
    auto r = cli->Get("/v2/upstream.test/team/app/tags/list?n=2");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(Tags(r) == json::array({"a", "b"}));
    CHECK(r->get_header_value("Link") == "</v2/upstream.test/team/app/tags/list?n=2&last=b>; rel=\"next\"");
    auto r2 = cli->Get(LinkTarget(r->get_header_value("Link")));
    REQUIRE(r2);
    CHECK(r2->status == 200);
    CHECK(Tags(r2) == json::array({"c", "d"}));
    auto r3 = cli->Get(LinkTarget(r2->get_header_value("Link")));
    REQUIRE(r3);
    CHECK(Tags(r3) == json::array({"e"}));
    CHECK_FALSE(r3->has_header("Link"));
    CHECK(json::parse(r3->body)["name"] == "team/app");
  }
  SUBCASE("?ns= is kept in the link") {
    auto r = cli->Get("/v2/alpine/tags/list?n=4&ns=docker.io");
    REQUIRE(r);
    CHECK(Tags(r) == json::array({"a", "b", "c", "d"}));
    CHECK(r->get_header_value("Link") == "</v2/alpine/tags/list?n=4&last=d&ns=docker.io>; rel=\"next\"");
  }
  SUBCASE("last alone drops the tags up to it; n past the count: everything, no link") {
    auto r = cli->Get("/v2/team/app/tags/list?last=c");
    REQUIRE(r);
    CHECK(Tags(r) == json::array({"d", "e"}));
    CHECK_FALSE(r->has_header("Link"));
    r = cli->Get("/v2/team/app/tags/list?n=5");
    REQUIRE(r);
    CHECK(Tags(r) == json::array({"a", "b", "c", "d", "e"}));
    CHECK_FALSE(r->has_header("Link"));
    r = cli->Get("/v2/team/app/tags/list?n=0");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(Tags(r) == json::array());
  }
  SUBCASE("an invalid n is 400 and the upstream is not asked") {
    for (const char* q : {"n=-1", "n=abc", "n=", "n=1.5"}) {
      CAPTURE(q);
      auto r = cli->Get(std::string("/v2/team/app/tags/list?") + q);
      REQUIRE(r);
      CHECK(r->status == 400);
      CHECK(ErrorCode(r) == "INVALID_ARGUMENT");
    }
    CHECK(up.tag_lists == 0);
  }
}

TEST_CASE("proxy: tags/list sorts an unsorted page and keeps the upstream's Link") {
  QuietLogs quiet;
  FakeRegistry up;
  up.unsorted_pages = true;
  Proxy proxy({{"upstream.test", up.url()}});
  auto cli = proxy.Client();
  auto r = cli->Get("/v2/upstream.test/team/app/tags/list?n=2");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(Tags(r) == json::array({"a", "b"}));
  CHECK(r->get_header_value("Link") == "</v2/upstream.test/team/app/tags/list?n=2&last=b>; rel=\"next\"");
  r = cli->Get(LinkTarget(r->get_header_value("Link")));
  REQUIRE(r);
  CHECK(Tags(r) == json::array({"c", "d"}));
  CHECK(r->get_header_value("Link") == "</v2/upstream.test/team/app/tags/list?n=2&last=d>; rel=\"next\"");
}

TEST_CASE("proxy: referrers always answer an OCI index") {
  QuietLogs quiet;
  FakeRegistry up;
  Proxy proxy({{"upstream.test", up.url()}});
  auto cli = proxy.Client();
  const Digest subject = Digest::Sha256Of("the image");
  const std::string path = "/v2/team/app/referrers/" + subject.ToString();
  const std::string fallback_tag = "sha256-" + subject.ToString().substr(7);

  auto check_index = [&](const httplib::Result& r) -> json {
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->get_header_value("Content-Type") == kIndexType);
    json j = json::parse(r->body, nullptr, false);
    REQUIRE(j.is_object());
    CHECK(j["schemaVersion"] == 2);
    CHECK(j["mediaType"] == kIndexType);
    REQUIRE(j["manifests"].is_array());
    return j["manifests"];
  };

  SUBCASE("no API, no fallback tag: an empty index") {
    auto r = cli->Get(path);
    CHECK(check_index(r) == json::array());
    CHECK_FALSE(r->has_header("OCI-Filters-Applied"));
    auto h = cli->Head(path);
    REQUIRE(h);
    CHECK(h->status == 200);
  }
  SUBCASE("no API: built from the fallback tag, non-object entries dropped, filtered on request") {
    json idx = {{"schemaVersion", 2},
                {"mediaType", kIndexType},
                {"manifests", json::array({Descriptor(kSigType, "sig"), "not an object", 7, Descriptor(kSbomType, "sbom")})}};
    up.SetManifest("team/app", fallback_tag, FakeManifest{idx.dump(), kIndexType, ""});
    auto r = cli->Get(path);
    CHECK(check_index(r) == json::array({Descriptor(kSigType, "sig"), Descriptor(kSbomType, "sbom")}));
    CHECK_FALSE(r->has_header("OCI-Filters-Applied"));
    r = cli->Get(path + "?artifactType=" + portcullis::oci::QueryEscape(kSbomType));
    CHECK(check_index(r) == json::array({Descriptor(kSbomType, "sbom")}));
    CHECK(r->get_header_value("OCI-Filters-Applied") == "artifactType");
    r = cli->Get(path + "?artifactType=application/none");
    CHECK(check_index(r) == json::array());
    CHECK(r->get_header_value("OCI-Filters-Applied") == "artifactType");
  }
  SUBCASE("no API, the fallback tag holds an image manifest: an empty index") {
    up.SetManifest("team/app", fallback_tag,
                   FakeManifest{R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
                                R"("config":{"mediaType":"a","digest":"sha256:00","size":1},"layers":[]})",
                                std::string(portcullis::oci::kOciManifest), ""});
    CHECK(check_index(cli->Get(path)) == json::array());
  }
  SUBCASE("an upstream with the API: its index passes through; the proxy filters when it did not") {
    json idx = {{"schemaVersion", 2},
                {"mediaType", kIndexType},
                {"manifests", json::array({Descriptor(kSigType, "sig"), Descriptor(kSbomType, "sbom")})}};
    const std::string bytes = idx.dump(2);
    up.SetReferrers("team/app", subject, bytes);
    auto r = cli->Get(path);
    check_index(r);
    CHECK(r->body == bytes);
    r = cli->Get(path + "?artifactType=" + portcullis::oci::QueryEscape(kSigType));
    CHECK(check_index(r) == json::array({Descriptor(kSigType, "sig")}));
    CHECK(r->get_header_value("OCI-Filters-Applied") == "artifactType");
  }
  SUBCASE("upstream failing or gone: 503") {
    up.fail_status = 503;
    auto r = cli->Get(path);
    REQUIRE(r);
    CHECK(r->status == 503);
    CHECK(ErrorCode(r) == "UPSTREAM_UNAVAILABLE");
    up.Stop();
    r = cli->Get(path);
    REQUIRE(r);
    CHECK(r->status == 503);
    CHECK(ErrorCode(r) == "UPSTREAM_UNAVAILABLE");
  }
  SUBCASE("a malformed digest stays 400 DIGEST_INVALID") {
    auto r = cli->Get("/v2/team/app/referrers/sha256:abc");
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(ErrorCode(r) == "DIGEST_INVALID");
  }
}

}  // namespace
