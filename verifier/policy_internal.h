// Shared by the two policy formats (policy_portcullis.cc, policy_containers.cc);
// not part of the public API.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "keys/key.h"
#include "oci/status.h"
#include "verifier/policy.h"
#include "verifier/strict_json.h"

namespace portcullis::verifier::internal {

using verifier::ParseStrictJson;  // verifier/strict_json.h

// A trusted public key and where it came from.
struct TrustedKey {
  std::string name;   // Portcullis: the key's name; containers: "keyPath <path>", "keyDatas[1]", ...
  std::string where;  // "file /abs/path" or "inline"
  std::shared_ptr<const keys::PublicKey> key;
  std::string der;  // SubjectPublicKeyInfo, to spot the same key under two names
};

// `path` made absolute against `base_dir` when relative.
std::string ResolvePath(const std::string& path, const std::string& base_dir);

// Loads a PEM "PUBLIC KEY" file; `file_bytes` receives the bytes (for the
// policy version). Errors name the resolved path.
StatusOr<TrustedKey> LoadKeyFile(const std::string& name, const std::string& path, const std::string& base_dir,
                                 std::string* file_bytes);
StatusOr<TrustedKey> LoadKeyPem(const std::string& name, std::string_view pem);

// "sha256:<hex>" of the parts, each length-prefixed.
std::string VersionOf(const std::vector<std::string>& parts);

// JSON type name for messages ("a string", "a number", ...).
std::string TypeOf(const nlohmann::json& j);

StatusOr<std::shared_ptr<const Policy>> ParsePortcullisPolicy(const nlohmann::json& j, const std::string& text,
                                                              const std::string& origin, const std::string& base_dir);
StatusOr<std::shared_ptr<const Policy>> ParseContainersPolicy(const nlohmann::json& j, const std::string& text,
                                                              const std::string& origin, const std::string& base_dir);

}  // namespace portcullis::verifier::internal
