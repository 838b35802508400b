#include "proxy/http_message.h"

#include <algorithm>

#include <strings.h>

#include <nlohmann/json.hpp>

namespace portcullis::proxy {

namespace {

bool EqualsNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

BodySource::Result BodySource::NextPiece(BodyPiece* out, size_t max) {
  auto bytes = std::make_shared<std::string>();
  const Result r = Next(bytes.get(), max);
  out->data = bytes->data();
  out->size = bytes->size();
  out->owner = std::move(bytes);
  return r;
}

bool IsValidUtf8(const std::string& s) {
  // ASCII is valid UTF-8, and nearly every request path is ASCII: answered
  // without the serializer (4,500 instructions a request in the profile).
  if (std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; })) return true;
  // nlohmann's serializer is strict about UTF-8 and throws on anything invalid.
  try {
    (void)nlohmann::json(s).dump();
    return true;
  } catch (...) {
    return false;
  }
}

std::string HttpRequest::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (EqualsNoCase(k, name)) return v;
  }
  return "";
}

bool HttpRequest::HasHeader(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (EqualsNoCase(k, name)) return true;
  }
  return false;
}

std::optional<std::string> HttpRequest::Param(const std::string& name) const {
  auto it = params.find(name);
  if (it == params.end()) return std::nullopt;
  return it->second;
}

std::string HttpRequest::ParamOr(const std::string& name, const std::string& fallback) const {
  auto it = params.find(name);
  return it == params.end() ? fallback : it->second;
}

}  // namespace portcullis::proxy
