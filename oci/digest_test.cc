// Tests for oci/digest.h, oci/base64.h and oci/errors.h.
#include "oci/digest.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "oci/base64.h"
#include "oci/errors.h"

namespace {

using portcullis::Code;
using portcullis::Status;
using namespace portcullis::oci;

const std::string kEmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const std::string kAbcSha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const std::string kFoxSha256 = "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592";
const std::string kEmptySha512 =
    "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
    "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";
const std::string kAbcSha512 =
    "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";

}  // namespace

TEST_CASE("oci: Digest::Parse accepts sha256 and sha512") {
  struct Case {
    std::string in, alg, hex;
  };
  const std::vector<Case> cases = {
      {"sha256:" + kEmptySha256, "sha256", kEmptySha256},
      {"sha256:" + kAbcSha256, "sha256", kAbcSha256},
      {"sha256:" + std::string(64, '0'), "sha256", std::string(64, '0')},
      {"sha512:" + kAbcSha512, "sha512", kAbcSha512},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    auto d = Digest::Parse(c.in);
    REQUIRE(d.ok());
    CHECK(d->algorithm() == c.alg);
    CHECK(d->hex() == c.hex);
    CHECK(d->ToString() == c.in);
    CHECK_FALSE(d->empty());
  }
}

TEST_CASE("oci: Digest::Parse rejects malformed digests with DIGEST_INVALID") {
  const std::vector<std::string> cases = {
      "",                                               // empty
      kEmptySha256,                                     // no colon
      ":" + kEmptySha256,                               // empty algorithm
      "sha256:",                                        // empty hex
      "md5:d41d8cd98f00b204e9800998ecf8427e",           // unsupported algorithm
      "sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709",  // unsupported algorithm
      "SHA256:" + kEmptySha256,                         // algorithm is case-sensitive
      "sha384:" + kAbcSha512.substr(0, 96),             // unsupported algorithm
      "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",  // uppercase
      "sha256:" + kEmptySha256.substr(0, 63),           // too short
      "sha256:" + kEmptySha256 + "0",                   // too long
      "sha256:" + kEmptySha256.substr(0, 63) + "g",     // not hex
      "sha256: " + kEmptySha256.substr(1),              // space
      "sha256:" + kAbcSha512,                           // sha512 length under sha256
      "sha512:" + kAbcSha256,                           // sha256 length under sha512
      "sha512:" + kAbcSha512.substr(0, 127) + "F",      // uppercase in sha512
      "sha256:" + kEmptySha256 + "\n",                  // trailing newline
  };
  for (const auto& s : cases) {
    CAPTURE(s);
    auto d = Digest::Parse(s);
    REQUIRE_FALSE(d.ok());
    CHECK(d.status().code() == Code::kDigestInvalid);
    CHECK_FALSE(d.status().message().empty());
  }
}

TEST_CASE("oci: Digest default is empty and digests compare by value") {
  Digest none;
  CHECK(none.empty());
  auto a = Digest::Parse("sha256:" + kAbcSha256);
  auto b = Digest::Parse("sha256:" + kEmptySha256);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*a == Digest::Sha256Of("abc"));
  CHECK(*a != *b);
  CHECK((*b < *a) == (kEmptySha256 < kAbcSha256));
}

TEST_CASE("oci: Sha256Of known vectors") {
  struct Case {
    std::string data, hex;
  };
  const std::vector<Case> cases = {
      {"", kEmptySha256},
      {"abc", kAbcSha256},
      {"The quick brown fox jumps over the lazy dog", kFoxSha256},
  };
  for (const auto& c : cases) {
    CAPTURE(c.data);
    Digest d = Digest::Sha256Of(c.data);
    CHECK(d.algorithm() == "sha256");
    CHECK(d.hex() == c.hex);
    CHECK(d.ToString() == "sha256:" + c.hex);
  }
  // Embedded NULs are data, not terminators.
  std::string with_nul("a\0b", 3);
  CHECK(Digest::Sha256Of(with_nul) != Digest::Sha256Of("a"));
}

TEST_CASE("oci: Hasher streamed in pieces equals one-shot") {
  std::string data;
  for (int i = 0; i < 100000; ++i) data += static_cast<char>((i * 131 + 7) % 256);
  const Digest whole = Digest::Sha256Of(data);
  for (size_t piece : {size_t(1), size_t(3), size_t(63), size_t(64), size_t(65), size_t(4096), size_t(99999)}) {
    CAPTURE(piece);
    auto h = Hasher::Create("sha256");
    REQUIRE(h != nullptr);
    for (size_t off = 0; off < data.size(); off += piece) {
      h->Update(std::string_view(data).substr(off, piece));
    }
    CHECK(h->Finish() == whole);
  }
  // Empty updates change nothing.
  auto h = Hasher::Create("sha256");
  REQUIRE(h != nullptr);
  h->Update("");
  h->Update("ab");
  h->Update(nullptr, 0);
  h->Update("c");
  CHECK(h->Finish().hex() == kAbcSha256);
}

TEST_CASE("oci: Hasher sha512 and unknown algorithms") {
  struct Case {
    std::vector<std::string> pieces;
    std::string hex;
  };
  const std::vector<Case> cases = {
      {{}, kEmptySha512},
      {{"abc"}, kAbcSha512},
      {{"a", "b", "c"}, kAbcSha512},
  };
  for (const auto& c : cases) {
    auto h = Hasher::Create("sha512");
    REQUIRE(h != nullptr);
    for (const auto& p : c.pieces) h->Update(p);
    Digest d = h->Finish();
    CHECK(d.algorithm() == "sha512");
    CHECK(d.hex() == c.hex);
    CHECK(Digest::Parse(d.ToString()).ok());
  }
  for (std::string alg : {"", "md5", "sha1", "SHA256", "sha384", "sha256 "}) {
    CAPTURE(alg);
    CHECK(Hasher::Create(alg) == nullptr);
  }
}

TEST_CASE("oci: HexEncode") {
  struct Case {
    std::vector<unsigned char> bytes;
    std::string hex;
  };
  const std::vector<Case> cases = {
      {{}, ""},
      {{0x00}, "00"},
      {{0x0f}, "0f"},
      {{0xf0}, "f0"},
      {{0xff, 0x00, 0xab, 0x7e}, "ff00ab7e"},
      {{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}, "0123456789abcdef"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.hex);
    CHECK(HexEncode(c.bytes.data(), c.bytes.size()) == c.hex);
  }
}

TEST_CASE("oci: Base64 RFC 4648 vectors") {
  struct Case {
    std::string plain, encoded;
  };
  const std::vector<Case> cases = {
      {"", ""},           {"f", "Zg=="},         {"fo", "Zm8="},
      {"foo", "Zm9v"},    {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
      {std::string("\xfb\xff\xbf", 3), "+/+/"},  // the two non-alphanumeric symbols
  };
  for (const auto& c : cases) {
    CAPTURE(c.encoded);
    CHECK(Base64Encode(c.plain) == c.encoded);
    auto dec = Base64Decode(c.encoded);
    REQUIRE(dec.has_value());
    CHECK(*dec == c.plain);
  }
}

TEST_CASE("oci: Base64 round trip of binary data") {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t n = 0; n <= all.size(); n += 17) {
    for (size_t extra : {size_t(0), size_t(1), size_t(2)}) {
      std::string data = all.substr(0, std::min(all.size(), n + extra));
      CAPTURE(data.size());
      std::string enc = Base64Encode(data);
      CHECK(enc.size() == 4 * ((data.size() + 2) / 3));
      auto dec = Base64Decode(enc);
      REQUIRE(dec.has_value());
      CHECK(*dec == data);
    }
  }
}

TEST_CASE("oci: Base64Decode rejects invalid input") {
  const std::vector<std::string> cases = {
      "Zg",          // unpadded
      "Zg=",         // short padding
      "Zm9vY",       // length not a multiple of 4
      "Zm9 ",        // whitespace
      "Zm9v\n",      // newline
      "Zm9v Zm9v",   // inner space
      "Zm9-",        // URL-safe alphabet
      "Zm9_",        // URL-safe alphabet
      "Zm9*",        // not base64 at all
      std::string("Zm\0v", 4),
  };
  for (const auto& s : cases) {
    CAPTURE(s);
    CHECK_FALSE(Base64Decode(s).has_value());
  }
}

// The header promises nullopt for anything that is not valid padded base64:
// '=' may only appear as one or two trailing padding characters.
TEST_CASE("oci: Base64Decode rejects misplaced padding") {
  const std::vector<std::string> cases = {
      "Zg=a",
      "=Zg=",
      "Zg==Zg==",
      "====",
      "Z===",
      "Zm9v====",
  };
  for (const auto& s : cases) {
    CAPTURE(s);
    CHECK_FALSE(Base64Decode(s).has_value());
  }
}

TEST_CASE("oci: LookupError maps codes to wire codes and HTTP statuses") {
  struct Case {
    Code code;
    std::string wire;
    int http;
  };
  const std::vector<Case> cases = {
      {Code::kNameInvalid, "NAME_INVALID", 400},
      {Code::kDigestInvalid, "DIGEST_INVALID", 400},
      {Code::kTagInvalid, "TAG_INVALID", 400},
      {Code::kManifestInvalid, "MANIFEST_INVALID", 400},
      {Code::kManifestUnknown, "MANIFEST_UNKNOWN", 404},
      {Code::kBlobUnknown, "BLOB_UNKNOWN", 404},
      {Code::kNameUnknown, "NAME_UNKNOWN", 404},
      {Code::kUnauthorized, "UNAUTHORIZED", 401},
      {Code::kDenied, "DENIED", 403},
      {Code::kUnsupported, "UNSUPPORTED", 405},
      {Code::kTooManyRequests, "TOOMANYREQUESTS", 429},
      {Code::kRangeInvalid, "RANGE_INVALID", 416},
      {Code::kSizeInvalid, "SIZE_INVALID", 400},
      {Code::kUpstreamUnavailable, "UPSTREAM_UNAVAILABLE", 503},
      {Code::kUpstreamInvalid, "UPSTREAM_INVALID", 502},
      {Code::kInternal, "INTERNAL", 500},
  };
  for (const auto& c : cases) {
    CAPTURE(c.wire);
    const ErrorInfo& info = LookupError(c.code);
    CHECK(info.code == c.code);
    CHECK(std::string(info.wire_code) == c.wire);
    CHECK(info.http_status == c.http);
    CHECK(std::string(CodeName(c.code)) == c.wire);
  }
}

TEST_CASE("oci: every Code has its own table row with a distinct wire code") {
  std::vector<std::string> seen;
  for (int i = static_cast<int>(Code::kOk); i <= static_cast<int>(Code::kInternal); ++i) {
    auto code = static_cast<Code>(i);
    CAPTURE(i);
    const ErrorInfo& info = LookupError(code);
    CHECK(info.code == code);
    CHECK(info.http_status >= 200);
    CHECK(info.http_status < 600);
    std::string wire(info.wire_code);
    CHECK_FALSE(wire.empty());
    CHECK(std::find(seen.begin(), seen.end(), wire) == seen.end());
    seen.push_back(wire);
  }
}

TEST_CASE("oci: ErrorJson and Status::ToString") {
  struct Case {
    Status status;
    std::string wire;
  };
  const std::vector<Case> cases = {
      {Status::ManifestUnknown("manifest \"x\" unknown"), "MANIFEST_UNKNOWN"},
      {Status::DigestInvalid("bad\ndigest \\ with \"quotes\""), "DIGEST_INVALID"},
      {Status::TooManyRequests(""), "TOOMANYREQUESTS"},
      {Status::Unauthorized("auth required"), "UNAUTHORIZED"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.wire);
    auto j = nlohmann::json::parse(ErrorJson(c.status), nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    REQUIRE(j.is_object());
    CHECK(j.size() == 1);
    REQUIRE(j.contains("errors"));
    REQUIRE(j["errors"].is_array());
    REQUIRE(j["errors"].size() == 1);
    const auto& e = j["errors"][0];
    CHECK(e.size() == 3);
    CHECK(e.at("code") == c.wire);
    CHECK(e.at("message") == c.status.message());
    CHECK(e.at("detail").is_null());
    CHECK(c.status.ToString() == c.wire + ": " + c.status.message());
  }
  CHECK(Status::Ok().ToString() == "OK");
  Status annotated = Status::BlobUnknown("gone").Annotate("GET x");
  CHECK(annotated.code() == Code::kBlobUnknown);
  CHECK(annotated.message() == "GET x: gone");
  CHECK(Status::Ok().Annotate("x").ok());
}
