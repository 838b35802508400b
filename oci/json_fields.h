// Type-safe readers for JSON that came from untrusted bytes (upstream answers,
// client requests, policy, config and key files, stored records).
//
// nlohmann's value(), get<>(), at() and const operator[] throw (or assert)
// when a key is missing or holds another type, and dump() throws on a string
// holding invalid UTF-8. None of the helpers here throws: a missing key, a
// value of another type, or a document that is not an object all give nullopt,
// and FieldPresent() tells "absent" from "present with the wrong type" so
// callers can name the problem in a Status.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace portcullis::oci {

// True when `j` is an object and holds `key` (any type, null included).
bool FieldPresent(const nlohmann::json& j, const std::string& key);

// j[key] when `j` is an object and the value is a JSON string; else nullopt.
std::optional<std::string> StringField(const nlohmann::json& j, const std::string& key);

// j[key] when it is an integral JSON number that fits in int64; else nullopt
// (floats, numbers above INT64_MAX, strings, booleans and null included).
std::optional<int64_t> IntField(const nlohmann::json& j, const std::string& key);

// j[key] when it is a JSON boolean; else nullopt.
std::optional<bool> BoolField(const nlohmann::json& j, const std::string& key);

// A pointer to j[key] when `j` is an object holding `key`; else nullptr. The
// pointer is valid for as long as `j` is neither changed nor destroyed.
const nlohmann::json* FindField(const nlohmann::json& j, const std::string& key);

// j.dump(indent) that never throws: invalid UTF-8 in strings becomes U+FFFD.
std::string DumpSafe(const nlohmann::json& j, int indent = -1);

// A short name of a JSON value's type for messages: "a number", "null", ...
std::string JsonTypeName(const nlohmann::json& j);

}  // namespace portcullis::oci
