// Tests for oci/json_fields.h and the readers that use it: every wrong JSON
// type an attacker can send gives nullopt or a Status, never an exception.
#include "oci/json_fields.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "oci/errors.h"
#include "oci/manifest.h"

namespace {

using nlohmann::json;
using portcullis::Code;
using portcullis::Status;
using namespace portcullis::oci;

const std::string kBadUtf8 = "/v2/\xff\xfe/x";

}  // namespace

TEST_CASE("oci: StringField, IntField, BoolField read only their own type") {
  json j = json::parse(R"({"s":"v","i":-7,"u":18446744073709551615,"f":1.5,"b":true,"n":null,"o":{},"a":[]})");
  CHECK(StringField(j, "s") == "v");
  CHECK(IntField(j, "i") == -7);
  CHECK(BoolField(j, "b") == true);
  for (const char* k : {"i", "u", "f", "b", "n", "o", "a", "missing"}) {
    CAPTURE(k);
    CHECK_FALSE(StringField(j, k).has_value());
  }
  for (const char* k : {"s", "u", "f", "b", "n", "o", "a", "missing"}) {
    CAPTURE(k);
    CHECK_FALSE(IntField(j, k).has_value());  // u is over INT64_MAX
  }
  CHECK_FALSE(BoolField(j, "s").has_value());
  CHECK(FieldPresent(j, "n"));
  CHECK_FALSE(FieldPresent(j, "missing"));
  CHECK(FindField(j, "o") != nullptr);
  // Not an object at all.
  for (const json& doc : {json::array({1}), json("x"), json(5), json(nullptr)}) {
    CHECK_FALSE(StringField(doc, "s").has_value());
    CHECK_FALSE(FieldPresent(doc, "s"));
  }
  CHECK(JsonTypeName(json(1)) == "a number");
  CHECK(JsonTypeName(json(nullptr)) == "null");
}

TEST_CASE("oci: DumpSafe replaces invalid UTF-8 instead of throwing") {
  json j = {{"message", kBadUtf8}};
  CHECK_THROWS(j.dump());  // the library's own behaviour, which DumpSafe exists for
  std::string out;
  REQUIRE_NOTHROW(out = DumpSafe(j));
  CHECK(out.find("\xef\xbf\xbd") != std::string::npos);  // U+FFFD
  CHECK_FALSE(json::parse(out, nullptr, false).is_discarded());
}

// Review L9: a request path with invalid UTF-8 once made ErrorJson throw, and
// the server answered 500 with the exception text in a header.
TEST_CASE("oci: ErrorJson of a message with invalid UTF-8 is valid JSON") {
  std::string body;
  REQUIRE_NOTHROW(body = ErrorJson(Status::NameInvalid("invalid repository name " + kBadUtf8)));
  json j = json::parse(body, nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  CHECK(j["errors"][0]["code"] == "NAME_INVALID");
}

// Review M4: platform fields of the wrong type in any upstream index threw
// nlohmann::type_error out of ParseManifest.
TEST_CASE("oci: ParseManifest refuses platform fields of the wrong type") {
  const std::string d = "sha256:" + std::string(64, 'a');
  for (const char* platform : {R"({"os":5})", R"({"os":"linux","architecture":null})", R"({"variant":{}})",
                               R"({"architecture":["amd64"]})", R"("linux")", "7"}) {
    CAPTURE(platform);
    std::string index = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)"
                        R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
                        d + R"(","size":10,"platform":)" + platform + "}]}";
    portcullis::StatusOr<Manifest> m = Status::Internal("not run");
    REQUIRE_NOTHROW(m = ParseManifest(index, kOciIndex));
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().code() == Code::kManifestInvalid);
  }
  std::string good = R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
                     R"("digest":")" + d + R"(","size":10,"platform":{"os":"linux","architecture":"arm64"}}]})";
  auto m = ParseManifest(good, kOciIndex);
  REQUIRE_MESSAGE(m.ok(), m.status().ToString());
  REQUIRE(m->manifests[0].platform.has_value());
  CHECK(m->manifests[0].platform->architecture == "arm64");
  CHECK(m->manifests[0].platform->variant.empty());
}
