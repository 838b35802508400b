// Policy loading common to both formats: strict JSON, format detection, key
// files, the version hash.
#include "verifier/policy.h"

#include <filesystem>
#include <set>

#include "keys/files.h"
#include "verifier/policy_internal.h"

namespace portcullis::verifier {

namespace internal {

using nlohmann::json;

std::string ResolvePath(const std::string& path, const std::string& base_dir) {
  std::filesystem::path p(path);
  if (p.is_absolute() || base_dir.empty()) return p.lexically_normal().string();
  return (std::filesystem::path(base_dir) / p).lexically_normal().string();
}

StatusOr<TrustedKey> LoadKeyPem(const std::string& name, std::string_view pem) {
  PC_ASSIGN_OR_RETURN(keys::PublicKey key, keys::PublicKey::FromPem(pem));
  TrustedKey t;
  t.name = name;
  t.where = "inline";
  PC_ASSIGN_OR_RETURN(t.der, key.Der());
  t.key = std::make_shared<const keys::PublicKey>(std::move(key));
  return t;
}

StatusOr<TrustedKey> LoadKeyFile(const std::string& name, const std::string& path, const std::string& base_dir,
                                 std::string* file_bytes) {
  const std::string resolved = ResolvePath(path, base_dir);
  PC_ASSIGN_OR_RETURN(std::string text, keys::ReadSmallFile(resolved, 64 * 1024));
  auto t = LoadKeyPem(name, text);
  if (!t.ok()) return t.status().Annotate(resolved);
  t->where = "file " + resolved;
  if (file_bytes != nullptr) *file_bytes = std::move(text);
  return t;
}

std::string VersionOf(const std::vector<std::string>& parts) {
  std::string all;
  for (const std::string& p : parts) {
    all += std::to_string(p.size());
    all += ':';
    all += p;
  }
  return oci::Digest::Sha256Of(all).ToString();
}

std::string TypeOf(const json& j) {
  switch (j.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::string:
      return "a string";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return "a number";
    default:
      return "something else";
  }
}

}  // namespace internal

std::string Decision::verdict() const {
  if (!allowed) return "reject";
  return warn_only ? "warn" : "accept";
}

Policy::~Policy() = default;

StatusOr<std::shared_ptr<const Policy>> Policy::Parse(const std::string& text, const std::string& origin,
                                                      const std::string& base_dir) {
  auto j = internal::ParseStrictJson(text);
  if (!j.ok()) return j.status().Annotate(origin);
  if (!j->is_object()) {
    return Status::InvalidArgument(origin + ": a policy is a JSON object, not " + internal::TypeOf(*j));
  }
  auto d = j->find("default");
  const bool containers = j->contains("transports") || (d != j->end() && d->is_array());
  return containers ? internal::ParseContainersPolicy(*j, text, origin, base_dir)
                    : internal::ParsePortcullisPolicy(*j, text, origin, base_dir);
}

StatusOr<std::shared_ptr<const Policy>> Policy::LoadFile(const std::string& path) {
  auto text = keys::ReadSmallFile(path, 1 << 20);
  if (!text.ok()) return text.status();
  std::string dir = std::filesystem::path(path).parent_path().string();
  return Parse(*text, path, dir);
}

}  // namespace portcullis::verifier
