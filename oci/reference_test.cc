// Tests for oci/reference.h: repository names, tags and image references.
#include "oci/reference.h"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

namespace {

using portcullis::Code;
using namespace portcullis::oci;

const std::string kHex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

}  // namespace

TEST_CASE("oci: ValidateRepository accepts valid names") {
  const std::vector<std::string> cases = {
      "a",
      "0",
      "alpine",
      "library/alpine",
      "a/b-c/d__e",
      "a.b_c",
      "a--b",
      "a---b",
      "a.b.c",
      "a_b__c",
      "ns/sub/deeper/repo",
      "lab/small",
      "x1/2y/3",
      std::string(255, 'a'),
      std::string(127, 'a') + "/" + std::string(127, 'b'),
  };
  for (const auto& s : cases) {
    CAPTURE(s);
    auto st = ValidateRepository(s);
    CHECK_MESSAGE(st.ok(), st.ToString());
  }
}

TEST_CASE("oci: ValidateRepository rejects invalid names with NAME_INVALID") {
  const std::vector<std::string> cases = {
      "",
      "A",
      "Library/alpine",
      "a//b",
      "/a",
      "a/",
      "/",
      "../etc",
      "a/..",
      "a/./b",
      ".",
      "-a",
      "a-",
      "_a",
      "a_",
      ".a",
      "a.",
      "a__-b",
      "a___b",
      "a..b",
      "a._b",
      "a-.b",
      "a b",
      "a:b",
      "a@b",
      "a\\b",
      "é",
      std::string("a\0b", 3),
      std::string(256, 'a'),
      std::string(128, 'a') + "/" + std::string(127, 'b'),
  };
  for (const auto& s : cases) {
    CAPTURE(s);
    auto st = ValidateRepository(s);
    CHECK(st.code() == Code::kNameInvalid);
    CHECK_FALSE(st.message().empty());
  }
}

TEST_CASE("oci: ValidateTag") {
  const std::vector<std::string> valid = {
      "latest", "v1", "1.0.0", "_", "_x", "A", "Z9", "v1.2-rc.1_b", "sha256-" + kHex + ".sig",
      "a" + std::string(127, '-'),  // 128 characters
      std::string(128, 'x'),
  };
  for (const auto& t : valid) {
    CAPTURE(t);
    auto st = ValidateTag(t);
    CHECK_MESSAGE(st.ok(), st.ToString());
  }
  const std::vector<std::string> invalid = {
      "", ".tag", "-tag", std::string(129, 'x'), "a b", "a/b", "a:b", "a@b", "a+b", "tag\n", "é",
      std::string("a\0b", 3),
  };
  for (const auto& t : invalid) {
    CAPTURE(t);
    auto st = ValidateTag(t);
    CHECK(st.code() == Code::kTagInvalid);
    CHECK_FALSE(st.message().empty());
  }
}

TEST_CASE("oci: ParseReference normalises references") {
  struct Case {
    std::string in;
    std::string registry, repository, tag;
    std::string digest;  // empty: none
    std::string ref, full;
  };
  const std::string d = "sha256:" + kHex;
  const std::vector<Case> cases = {
      {"alpine", "docker.io", "library/alpine", "latest", "", "latest", "docker.io/library/alpine:latest"},
      {"alpine:3.20", "docker.io", "library/alpine", "3.20", "", "3.20", "docker.io/library/alpine:3.20"},
      {"user/app:1", "docker.io", "user/app", "1", "", "1", "docker.io/user/app:1"},
      {"docker.io/alpine", "docker.io", "library/alpine", "latest", "", "latest",
       "docker.io/library/alpine:latest"},
      {"docker.io/library/alpine:edge", "docker.io", "library/alpine", "edge", "", "edge",
       "docker.io/library/alpine:edge"},
      {"index.docker.io/library/busybox", "docker.io", "library/busybox", "latest", "", "latest",
       "docker.io/library/busybox:latest"},
      {"index.docker.io/busybox", "docker.io", "library/busybox", "latest", "", "latest",
       "docker.io/library/busybox:latest"},
      {"registry-1.docker.io/user/app:2", "docker.io", "user/app", "2", "", "2", "docker.io/user/app:2"},
      {"ghcr.io/o/r@" + d, "ghcr.io", "o/r", "", d, d, "ghcr.io/o/r@" + d},
      {"ghcr.io/o/r:v1@" + d, "ghcr.io", "o/r", "v1", d, d, "ghcr.io/o/r:v1@" + d},
      {"alpine:3.20@" + d, "docker.io", "library/alpine", "3.20", d, d, "docker.io/library/alpine:3.20@" + d},
      {"localhost:5000/x:tag", "localhost:5000", "x", "tag", "", "tag", "localhost:5000/x:tag"},
      {"localhost:5000/x", "localhost:5000", "x", "latest", "", "latest", "localhost:5000/x:latest"},
      {"localhost/x", "localhost", "x", "latest", "", "latest", "localhost/x:latest"},
      {"127.0.0.1:5000/lab/small:v1", "127.0.0.1:5000", "lab/small", "v1", "", "v1",
       "127.0.0.1:5000/lab/small:v1"},
      {"quay.io/a/b/c:1.0-rc", "quay.io", "a/b/c", "1.0-rc", "", "1.0-rc", "quay.io/a/b/c:1.0-rc"},
      {"upstream.test/one", "upstream.test", "one", "latest", "", "latest", "upstream.test/one:latest"},
      // A first component without '.' or ':' (and not localhost) is a Docker Hub namespace.
      {"myhost/app", "docker.io", "myhost/app", "latest", "", "latest", "docker.io/myhost/app:latest"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    auto r = ParseReference(c.in);
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    CHECK(r->registry == c.registry);
    CHECK(r->repository == c.repository);
    CHECK(r->tag == c.tag);
    if (c.digest.empty()) {
      CHECK_FALSE(r->digest.has_value());
    } else {
      REQUIRE(r->digest.has_value());
      CHECK(r->digest->ToString() == c.digest);
    }
    CHECK(r->Name() == c.registry + "/" + c.repository);
    CHECK(r->Ref() == c.ref);
    CHECK(r->ToString() == c.full);
    // The normal form parses back to itself.
    auto again = ParseReference(r->ToString());
    REQUIRE(again.ok());
    CHECK(again->ToString() == c.full);
  }
}

TEST_CASE("oci: ParseReference rejects bad references with the right code") {
  struct Case {
    std::string in;
    Code code;
  };
  const std::vector<Case> cases = {
      {"", Code::kNameInvalid},
      {"Alpine", Code::kNameInvalid},
      {"ghcr.io/O/r", Code::kNameInvalid},
      {"a//b", Code::kNameInvalid},
      {"ghcr.io/", Code::kNameInvalid},
      {"ghcr.io/../etc", Code::kNameInvalid},
      {"user/app-:1", Code::kNameInvalid},
      {"docker.io/" + std::string(250, 'a'), Code::kNameInvalid},  // "library/" + 250 > 255
      {"alpine:", Code::kTagInvalid},
      {"alpine:-x", Code::kTagInvalid},
      {"alpine:.x", Code::kTagInvalid},
      {"alpine:" + std::string(129, 't'), Code::kTagInvalid},
      {"alpine:a+b", Code::kTagInvalid},
      {"alpine@", Code::kDigestInvalid},
      {"alpine@sha256:xyz", Code::kDigestInvalid},
      {"alpine@" + kHex, Code::kDigestInvalid},
      {"alpine@md5:d41d8cd98f00b204e9800998ecf8427e", Code::kDigestInvalid},
      {"alpine@sha256:" + std::string(64, 'A'), Code::kDigestInvalid},
      {"alpine:1@sha256:" + kHex.substr(1), Code::kDigestInvalid},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    auto r = ParseReference(c.in);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == c.code);
  }
}

TEST_CASE("oci: Reference Ref and ToString") {
  Reference r;
  r.registry = "ghcr.io";
  r.repository = "o/r";
  CHECK(r.Name() == "ghcr.io/o/r");
  CHECK(r.Ref() == "latest");
  CHECK(r.ToString() == "ghcr.io/o/r");
  r.tag = "v2";
  CHECK(r.Ref() == "v2");
  CHECK(r.ToString() == "ghcr.io/o/r:v2");
  r.digest = *Digest::Parse("sha256:" + kHex);
  CHECK(r.Ref() == "sha256:" + kHex);
  CHECK(r.ToString() == "ghcr.io/o/r:v2@sha256:" + kHex);
  r.tag.clear();
  CHECK(r.ToString() == "ghcr.io/o/r@sha256:" + kHex);
}
