#include "oci/json_fields.h"

#include <limits>

namespace portcullis::oci {

using nlohmann::json;

const json* FindField(const json& j, const std::string& key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

bool FieldPresent(const json& j, const std::string& key) { return FindField(j, key) != nullptr; }

std::optional<std::string> StringField(const json& j, const std::string& key) {
  const json* v = FindField(j, key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return v->get_ref<const std::string&>();
}

std::optional<int64_t> IntField(const json& j, const std::string& key) {
  const json* v = FindField(j, key);
  if (v == nullptr) return std::nullopt;
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v->is_number_integer()) return v->get<int64_t>();
  return std::nullopt;
}

std::optional<bool> BoolField(const json& j, const std::string& key) {
  const json* v = FindField(j, key);
  if (v == nullptr || !v->is_boolean()) return std::nullopt;
  return v->get<bool>();
}

std::string DumpSafe(const json& j, int indent) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

std::string JsonTypeName(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return "a number";
    case json::value_t::binary: return "binary";
    case json::value_t::discarded: return "not JSON";
  }
  return "unknown";
}

}  // namespace portcullis::oci
