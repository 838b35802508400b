// Unit tests for verifier/glob: name pattern matching, bad patterns, and the
// specificity order "the most specific rule wins" relies on.
#include "verifier/glob.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace portcullis::verifier {
namespace {

const oci::Digest kA = oci::Digest::Sha256Of("a");
const oci::Digest kB = oci::Digest::Sha256Of("b");

TEST_CASE("policy: glob matching table") {
  struct Case {
    std::string pattern, name;
    bool match;
  };
  const std::vector<Case> cases = {
      {"docker.io/library/alpine", "docker.io/library/alpine", true},
      {"docker.io/library/alpine", "docker.io/library/alpine2", false},
      {"docker.io/library/alpine", "docker.io/library/alpin", false},
      {"docker.io/library/*", "docker.io/library/alpine", true},
      {"docker.io/library/*", "docker.io/library/a/b", false},  // '*' stays in its segment
      {"docker.io/library/*", "docker.io/library", false},
      {"docker.io/*/alpine", "docker.io/library/alpine", true},
      {"docker.io/*/alpine", "docker.io/x/y/alpine", false},
      {"docker.io/library/alp*", "docker.io/library/alpine", true},
      {"docker.io/library/alp*", "docker.io/library/alp", true},  // zero characters
      {"docker.io/library/*ine", "docker.io/library/alpine", true},
      {"docker.io/library/a*e", "docker.io/library/alpine", true},
      {"docker.io/library/a*e", "docker.io/library/alpina", false},
      {"registry.example/team/**", "registry.example/team/app", true},
      {"registry.example/team/**", "registry.example/team/a/b/c", true},
      {"registry.example/team/**", "registry.example/team", false},
      {"registry.example/team/**", "registry.example/teams/app", false},
      {"registry.example/**/app", "registry.example/a/b/app", true},
      {"registry.example/**/app", "registry.example/a/b/app2", false},
      {"**", "docker.io/library/alpine", true},
      {"**", "127.0.0.1:5000/lab/small", true},
      {"**/small", "127.0.0.1:5000/lab/small", true},
      {"*/lab/small", "127.0.0.1:5000/lab/small", true},
      {"127.0.0.1:5000/lab/*", "127.0.0.1:5000/lab/small", true},
      {"127.0.0.1:*/lab/*", "127.0.0.1:5001/lab/small", true},
      {"127.0.0.1:5000/**", "127.0.0.1:5001/lab/small", false},
      {"*.example/**", "registry.example/team/app", true},
      {"*.example/**", "registry.example.org/team/app", false},
      {"*", "docker.io", true},
      {"*", "docker.io/library/alpine", false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.pattern);
    CAPTURE(c.name);
    auto p = NamePattern::Parse(c.pattern);
    REQUIRE_MESSAGE(p.ok(), p.status().ToString());
    CHECK(p->MatchesName(c.name) == c.match);
    CHECK(p->Matches(c.name, kA) == c.match);
  }
}

TEST_CASE("policy: digest pins match name and digest") {
  auto p = NamePattern::Parse("docker.io/library/busybox@" + kA.ToString());
  REQUIRE(p.ok());
  CHECK(p->pin() == kA);
  CHECK(p->Matches("docker.io/library/busybox", kA));
  CHECK(!p->Matches("docker.io/library/busybox", kB));
  CHECK(!p->Matches("docker.io/library/alpine", kA));
  auto any = NamePattern::Parse("**@" + kB.ToString());
  REQUIRE(any.ok());
  CHECK(any->Matches("x.example/a", kB));
  CHECK(!any->Matches("x.example/a", kA));
}

TEST_CASE("policy: bad patterns are refused with the reason") {
  struct Case {
    std::string pattern, reason;
  };
  const std::vector<Case> bad = {
      {"", "empty"},
      {"docker.io/library/***", "\"***\""},
      {"docker.io/lib**", "whole path segment"},
      {"docker.io/**x", "whole path segment"},
      {"docker.io//alpine", "empty path segment"},
      {"/docker.io/alpine", "starts or ends with '/'"},
      {"docker.io/alpine/", "starts or ends with '/'"},
      {"docker.io/Library/alpine", "lowercase"},
      {"docker.io/library/alp?ne", "character '?'"},
      {"docker.io/library/alpine:3.20", "tags are not matched"},
      {"docker.io/library/alpine@sha256:abc", "digest pin"},
      {"@" + kA.ToString(), "name part is empty"},
  };
  for (const Case& c : bad) {
    CAPTURE(c.pattern);
    auto p = NamePattern::Parse(c.pattern);
    REQUIRE(!p.ok());
    CHECK_MESSAGE(p.status().message().find(c.reason) != std::string::npos, p.status().message());
  }
  CHECK(!NamePattern::Parse("a.example/x@" + kA.ToString(), /*allow_digest=*/false).ok());
  CHECK(NamePattern::Parse("localhost:5000/x").ok());  // ':' in the host is a port
}

// Sorting by CompareSpecificity (ties by input order) must give this order.
TEST_CASE("policy: most specific pattern first (total order)") {
  struct Case {
    std::vector<std::string> in;    // file order
    std::vector<std::string> want;  // most specific first
  };
  const std::string pin = "@" + kA.ToString();
  const std::vector<Case> cases = {
      {{"**", "docker.io/library/*", "docker.io/library/busybox" + pin, "docker.io/library/alpine"},
       {"docker.io/library/busybox" + pin, "docker.io/library/alpine", "docker.io/library/*", "**"}},
      // a pin beats any glob, even a literal name
      {{"docker.io/library/alpine", "**" + pin}, {"**" + pin, "docker.io/library/alpine"}},
      // more literal characters first
      {{"registry.example/**", "registry.example/team/**"}, {"registry.example/team/**", "registry.example/**"}},
      {{"docker.io/*/alpine", "docker.io/library/*"}, {"docker.io/library/*", "docker.io/*/alpine"}},
      // equal literals: fewer ** first, then fewer *
      {{"a.example/**", "a.example/*"}, {"a.example/*", "a.example/**"}},
      {{"a.example/*/*x", "a.example/**/x"}, {"a.example/*/*x", "a.example/**/x"}},
      // complete tie: file order
      {{"a.example/*/b", "a.example/b/*"}, {"a.example/*/b", "a.example/b/*"}},
      {{"a.example/b/*", "a.example/*/b"}, {"a.example/b/*", "a.example/*/b"}},
  };
  for (const Case& c : cases) {
    std::vector<std::pair<NamePattern, size_t>> ps;
    for (size_t i = 0; i < c.in.size(); ++i) {
      auto p = NamePattern::Parse(c.in[i]);
      REQUIRE_MESSAGE(p.ok(), p.status().ToString());
      ps.emplace_back(*p, i);
    }
    std::stable_sort(ps.begin(), ps.end(), [](const auto& a, const auto& b) {
      int cmp = NamePattern::CompareSpecificity(a.first, b.first);
      return cmp != 0 ? cmp < 0 : a.second < b.second;
    });
    std::vector<std::string> got;
    for (const auto& [p, i] : ps) got.push_back(p.text());
    CHECK(got == c.want);
  }
}

}  // namespace
}  // namespace portcullis::verifier
