#include "oci/reference.h"

namespace portcullis::oci {

namespace {

bool IsAlnumLower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool ValidComponent(std::string_view c) {
  if (c.empty() || !IsAlnumLower(c.front()) || !IsAlnumLower(c.back())) return false;
  size_t i = 0;
  while (i < c.size()) {
    if (IsAlnumLower(c[i])) {
      ++i;
      continue;
    }
    // A separator run: ".", "_", "__" or "-+", followed by an alphanumeric.
    size_t j = i;
    if (c[i] == '.') {
      j = i + 1;
    } else if (c[i] == '_') {
      j = i + 1;
      if (j < c.size() && c[j] == '_') ++j;
    } else if (c[i] == '-') {
      while (j < c.size() && c[j] == '-') ++j;
    } else {
      return false;
    }
    if (j >= c.size() || !IsAlnumLower(c[j])) return false;
    i = j;
  }
  return true;
}

std::string Shown(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 200)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

}  // namespace

Status ValidateRepository(std::string_view name) {
  if (name.empty()) return Status::NameInvalid("repository name is empty");
  if (name.size() > 255) {
    return Status::NameInvalid("repository name is longer than 255 characters");
  }
  size_t start = 0;
  while (true) {
    size_t slash = name.find('/', start);
    std::string_view comp = name.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (!ValidComponent(comp)) {
      return Status::NameInvalid("invalid repository name \"" + Shown(name) + "\": component \"" + Shown(comp) +
                                 "\" must match [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*");
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return Status::Ok();
}

Status ValidateTag(std::string_view tag) {
  auto bad = [&] {
    return Status::TagInvalid("invalid tag \"" + Shown(tag) + "\": must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}");
  };
  if (tag.empty() || tag.size() > 128) return bad();
  for (size_t i = 0; i < tag.size(); ++i) {
    char c = tag[i];
    bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (word) continue;
    if (i > 0 && (c == '.' || c == '-')) continue;
    return bad();
  }
  return Status::Ok();
}

std::string Reference::Ref() const {
  if (digest) return digest->ToString();
  return tag.empty() ? "latest" : tag;
}

std::string Reference::ToString() const {
  std::string s = Name();
  if (!tag.empty()) s += ":" + tag;
  if (digest) s += "@" + digest->ToString();
  return s;
}

StatusOr<Reference> ParseReference(std::string_view s) {
  Reference ref;
  std::string_view rest = s;
  if (auto at = rest.find('@'); at != std::string_view::npos) {
    PC_ASSIGN_OR_RETURN(Digest d, Digest::Parse(rest.substr(at + 1)));
    ref.digest = d;
    rest = rest.substr(0, at);
  }
  // A tag is after the last ':' that follows the last '/'.
  size_t last_slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && (last_slash == std::string_view::npos || colon > last_slash)) {
    ref.tag = std::string(rest.substr(colon + 1));
    PC_RETURN_IF_ERROR(ValidateTag(ref.tag));
    rest = rest.substr(0, colon);
  }
  size_t first_slash = rest.find('/');
  std::string_view first = rest.substr(0, first_slash);
  if (first_slash != std::string_view::npos &&
      (first.find('.') != std::string_view::npos || first.find(':') != std::string_view::npos ||
       first == "localhost")) {
    ref.registry = std::string(first);
    ref.repository = std::string(rest.substr(first_slash + 1));
  } else {
    ref.registry = "docker.io";
    ref.repository = std::string(rest);
  }
  if (ref.registry == "index.docker.io" || ref.registry == "registry-1.docker.io") ref.registry = "docker.io";
  if (ref.registry == "docker.io" && ref.repository.find('/') == std::string::npos) {
    ref.repository = "library/" + ref.repository;
  }
  PC_RETURN_IF_ERROR(ValidateRepository(ref.repository));
  if (ref.tag.empty() && !ref.digest) ref.tag = "latest";
  return ref;
}

}  // namespace portcullis::oci
