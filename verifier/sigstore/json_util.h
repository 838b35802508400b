// Typed, non-throwing accessors over nlohmann::json for Sigstore's protobuf JSON
// (int64 as strings or numbers, bytes as base64). Every accessor returns a Status
// naming the field (`where`) instead of throwing on a missing or mistyped value.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "oci/status.h"
#include "verifier/sigstore/crypto.h"

namespace portcullis::verifier::sigstore {

inline const nlohmann::json* Field(const nlohmann::json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(std::string(key));
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

inline StatusOr<const nlohmann::json*> Object(const nlohmann::json& obj, std::string_view key, std::string_view where) {
  const nlohmann::json* v = Field(obj, key);
  if (v == nullptr || !v->is_object()) {
    return Status::InvalidArgument(std::string(where) + "." + std::string(key) + " missing or not an object");
  }
  return v;
}

inline StatusOr<std::string> String(const nlohmann::json& obj, std::string_view key, std::string_view where) {
  const nlohmann::json* v = Field(obj, key);
  if (v == nullptr || !v->is_string()) {
    return Status::InvalidArgument(std::string(where) + "." + std::string(key) + " missing or not a string");
  }
  return v->get_ref<const std::string&>();
}

inline StatusOr<std::string> Bytes(const nlohmann::json& obj, std::string_view key, std::string_view where) {
  PC_ASSIGN_OR_RETURN(std::string s, String(obj, key, where));
  return DecodeBase64(s, std::string(where) + "." + std::string(key));
}

// Protobuf JSON int64: a decimal string or a JSON integer, >= 0.
inline StatusOr<int64_t> Int64(const nlohmann::json& obj, std::string_view key, std::string_view where) {
  const nlohmann::json* v = Field(obj, key);
  std::string name = std::string(where) + "." + std::string(key);
  if (v == nullptr) return Status::InvalidArgument(name + " missing");
  if (v->is_number_unsigned()) {
    uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return Status::InvalidArgument(name + " out of range");
    return static_cast<int64_t>(u);
  }
  if (v->is_number_integer()) {
    int64_t i = v->get<int64_t>();
    if (i < 0) return Status::InvalidArgument(name + " is negative");
    return i;
  }
  if (!v->is_string()) return Status::InvalidArgument(name + " is not an integer");
  const std::string& s = v->get_ref<const std::string&>();
  if (s.empty() || s.size() > 18) return Status::InvalidArgument(name + " is not a valid integer");
  int64_t out = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return Status::InvalidArgument(name + " is not a valid integer");
    out = out * 10 + (c - '0');
  }
  return out;
}

}  // namespace portcullis::verifier::sigstore
