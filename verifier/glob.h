// Image name patterns of the Portcullis trust policy, and their specificity order.
//
// A pattern is matched against a canonical image name "<upstream>/<repository>"
// (e.g. "docker.io/library/alpine", "127.0.0.1:5000/lab/small"), optionally
// followed by a digest pin:
//
//   registry.example/team/app            exactly that name
//   registry.example/team/*              '*'  = zero or more characters other than '/'
//   registry.example/team/**             '**' = zero or more characters, '/' included;
//                                         it must be a whole path segment, so this
//                                         matches team/app and team/a/b, not "team"
//   docker.io/library/a*                 '*' may sit inside a segment
//   docker.io/library/busybox@sha256:HEX a digest pin: the name must match AND the
//                                         image digest must equal HEX
//   **                                    every name
//
// Allowed characters: a-z 0-9 . _ - : / * (names are lowercase; ':' only in the
// first segment, as a port). Tags are not patterns (pin a digest instead).
//
// Specificity, a total order (most specific first), used by "the most specific
// rule wins":
//   1. a pattern with a digest pin beats every pattern without one;
//   2. then more literal (non-'*') characters;
//   3. then fewer '**' wildcards;
//   4. then fewer '*' wildcards;
//   5. then (decided by the caller) the earlier rule in the file.
// Value type; immutable; thread-compatible.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/digest.h"
#include "oci/status.h"

namespace portcullis::verifier {

class NamePattern {
 public:
  // An empty pattern (matches no image name); assign a parsed one.
  NamePattern() = default;
  // Parses `pattern`. INVALID_ARGUMENT naming the problem (empty, bad character,
  // uppercase, "***", '**' inside a segment, empty segment, a tag, a malformed
  // digest pin, a pin when `allow_digest` is false).
  static StatusOr<NamePattern> Parse(std::string_view pattern, bool allow_digest = true);

  // True when `name` matches the name part and, for a pinned pattern, `digest`
  // equals the pin.
  bool Matches(std::string_view name, const oci::Digest& digest) const;
  // The name part alone (a pin, if any, is ignored).
  bool MatchesName(std::string_view name) const;

  const std::string& text() const { return text_; }
  const std::optional<oci::Digest>& pin() const { return pin_; }
  bool has_wildcards() const { return double_stars_ + single_stars_ > 0; }
  size_t literal_chars() const { return literal_chars_; }
  int double_stars() const { return double_stars_; }
  int single_stars() const { return single_stars_; }

  // <0 when `a` is more specific than `b`, >0 when less, 0 when the order above
  // cannot tell them apart (the caller then uses file order).
  static int CompareSpecificity(const NamePattern& a, const NamePattern& b);

 private:
  enum class Tok { kLiteral, kStar, kDoubleStar };
  struct Token {
    Tok kind;
    std::string literal;
  };
  bool MatchFrom(size_t tok, std::string_view name, size_t pos, std::vector<signed char>& memo) const;

  std::string text_;
  std::vector<Token> tokens_;
  std::optional<oci::Digest> pin_;
  size_t literal_chars_ = 0;
  int double_stars_ = 0;
  int single_stars_ = 0;
};

}  // namespace portcullis::verifier
