#include "verifier/glob.h"

namespace portcullis::verifier {

namespace {

bool AllowedChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == ':' || c == '/' ||
         c == '*';
}

Status Bad(std::string_view pattern, const std::string& why) {
  return Status::InvalidArgument("bad pattern \"" + std::string(pattern.substr(0, 300)) + "\": " + why);
}

}  // namespace

StatusOr<NamePattern> NamePattern::Parse(std::string_view pattern, bool allow_digest) {
  NamePattern p;
  p.text_ = std::string(pattern);
  std::string_view name = pattern;
  if (size_t at = pattern.find('@'); at != std::string_view::npos) {
    if (!allow_digest) return Bad(pattern, "a digest pin is not allowed here");
    auto d = oci::Digest::Parse(pattern.substr(at + 1));
    if (!d.ok()) return Bad(pattern, "digest pin: " + d.status().message());
    p.pin_ = *d;
    name = pattern.substr(0, at);
  }
  if (name.empty()) return Bad(pattern, "the name part is empty");
  if (name.front() == '/' || name.back() == '/') return Bad(pattern, "starts or ends with '/'");
  if (name.find("//") != std::string_view::npos) return Bad(pattern, "has an empty path segment");
  for (char c : name) {
    if (c >= 'A' && c <= 'Z') return Bad(pattern, "image names are lowercase");
    if (!AllowedChar(c)) {
      return Bad(pattern, std::string("character '") + c + "' is not allowed (a-z 0-9 . _ - : / *)");
    }
  }
  size_t first_slash = name.find('/');
  if (size_t colon = name.find(':');
      colon != std::string_view::npos && first_slash != std::string_view::npos && colon > first_slash) {
    return Bad(pattern, "tags are not matched; pin a digest with @sha256:<hex> instead");
  }
  size_t i = 0;
  while (i < name.size()) {
    if (name[i] != '*') {
      size_t j = name.find('*', i);
      if (j == std::string_view::npos) j = name.size();
      p.tokens_.push_back({Tok::kLiteral, std::string(name.substr(i, j - i))});
      p.literal_chars_ += j - i;
      i = j;
      continue;
    }
    size_t j = i;
    while (j < name.size() && name[j] == '*') ++j;
    size_t run = j - i;
    if (run > 2) return Bad(pattern, "\"***\" is not a wildcard (use * or **)");
    if (run == 2) {
      bool starts_segment = i == 0 || name[i - 1] == '/';
      bool ends_segment = j == name.size() || name[j] == '/';
      if (!starts_segment || !ends_segment) return Bad(pattern, "'**' must be a whole path segment");
      p.tokens_.push_back({Tok::kDoubleStar, ""});
      ++p.double_stars_;
    } else {
      p.tokens_.push_back({Tok::kStar, ""});
      ++p.single_stars_;
    }
    i = j;
  }
  return p;
}

bool NamePattern::MatchFrom(size_t tok, std::string_view name, size_t pos, std::vector<signed char>& memo) const {
  const size_t width = name.size() + 1;
  signed char& m = memo[tok * width + pos];
  if (m >= 0) return m == 1;
  bool result = false;
  if (tok == tokens_.size()) {
    result = pos == name.size();
  } else {
    const Token& t = tokens_[tok];
    switch (t.kind) {
      case Tok::kLiteral:
        result =
            name.substr(pos, t.literal.size()) == t.literal && MatchFrom(tok + 1, name, pos + t.literal.size(), memo);
        break;
      case Tok::kStar:
      case Tok::kDoubleStar:
        for (size_t end = pos; end <= name.size(); ++end) {
          if (MatchFrom(tok + 1, name, end, memo)) {
            result = true;
            break;
          }
          if (end < name.size() && t.kind == Tok::kStar && name[end] == '/') break;
        }
        break;
    }
  }
  m = result ? 1 : 0;
  return result;
}

bool NamePattern::MatchesName(std::string_view name) const {
  if (!has_wildcards()) {
    size_t end = text_.find('@');
    return name == std::string_view(text_).substr(0, end);
  }
  std::vector<signed char> memo((tokens_.size() + 1) * (name.size() + 1), -1);
  return MatchFrom(0, name, 0, memo);
}

bool NamePattern::Matches(std::string_view name, const oci::Digest& digest) const {
  if (pin_ && *pin_ != digest) return false;
  return MatchesName(name);
}

int NamePattern::CompareSpecificity(const NamePattern& a, const NamePattern& b) {
  if (a.pin_.has_value() != b.pin_.has_value()) return a.pin_ ? -1 : 1;
  if (a.literal_chars_ != b.literal_chars_) return a.literal_chars_ > b.literal_chars_ ? -1 : 1;
  if (a.double_stars_ != b.double_stars_) return a.double_stars_ < b.double_stars_ ? -1 : 1;
  if (a.single_stars_ != b.single_stars_) return a.single_stars_ < b.single_stars_ ? -1 : 1;
  return 0;
}

}  // namespace portcullis::verifier
