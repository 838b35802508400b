// Keyless parts of the Portcullis policy format: require.identities and the
// trusted root bundles are verified against (see verifier/policy.md).
#include <regex>

#include "keys/files.h"
#include "verifier/policy_internal.h"

namespace portcullis::verifier::internal {

using nlohmann::json;

Status FieldError(const std::string& origin, const std::string& field, const std::string& msg) {
  return Status::InvalidArgument(origin + ": " + field + ": " + msg);
}

Status CheckFields(const std::string& origin, const std::string& where, const json& obj,
                   std::initializer_list<const char*> allowed) {
  for (const auto& [k, v] : obj.items()) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || k == a;
    if (ok) continue;
    std::string list;
    for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    std::string msg = "unknown field \"" + k + "\" (allowed: " + list + ")";
    return Status::InvalidArgument(origin + ": " + (where.empty() ? msg : where + ": " + msg));
  }
  return Status::Ok();
}

StatusOr<std::vector<KeylessIdentity>> ParseIdentities(const json& list, const std::string& origin,
                                                       const std::string& where) {
  if (!list.is_array() || list.empty()) return FieldError(origin, where, "must be a non-empty array of identities");
  if (list.size() > kMaxRuleIdentities) {
    return FieldError(origin, where, "more than " + std::to_string(kMaxRuleIdentities) + " identities");
  }
  std::vector<KeylessIdentity> out;
  for (size_t i = 0; i < list.size(); ++i) {
    const json& e = list[i];
    const std::string w = where + "[" + std::to_string(i) + "]";
    if (!e.is_object()) return FieldError(origin, w, "must be an object, not " + TypeOf(e));
    PC_RETURN_IF_ERROR(CheckFields(origin, w, e,
                                   {"issuer", "issuer_regexp", "subject", "subject_regexp", "source_repository",
                                    "source_repository_ref", "build_signer_uri", "runner_environment"}));
    KeylessIdentity id;
    std::pair<const char*, std::string*> fields[] = {{"issuer", &id.issuer},
                                                     {"issuer_regexp", &id.issuer_regexp},
                                                     {"subject", &id.subject},
                                                     {"subject_regexp", &id.subject_regexp},
                                                     {"source_repository", &id.source_repository},
                                                     {"source_repository_ref", &id.source_repository_ref},
                                                     {"build_signer_uri", &id.build_signer_uri},
                                                     {"runner_environment", &id.runner_environment}};
    for (auto& [name, dst] : fields) {
      auto it = e.find(name);
      if (it == e.end()) continue;
      if (!it->is_string() || it->get<std::string>().empty()) {
        return FieldError(origin, w + "." + name, "must be a non-empty string");
      }
      *dst = it->get<std::string>();
      if (std::string_view(name).ends_with("_regexp")) {
        try {
          std::regex re(*dst, std::regex::ECMAScript);
        } catch (const std::regex_error& err) {
          return FieldError(origin, w + "." + name, std::string("not a valid regular expression: ") + err.what());
        }
      }
    }
    if (id.issuer.empty() == id.issuer_regexp.empty()) {
      return FieldError(origin, w, "needs exactly one of \"issuer\" and \"issuer_regexp\"");
    }
    if (id.subject.empty() == id.subject_regexp.empty()) {
      return FieldError(origin, w, "needs exactly one of \"subject\" and \"subject_regexp\"");
    }
    for (const KeylessIdentity& other : out) {
      if (other.Describe() == id.Describe()) {
        return FieldError(origin, w, "the same identity is listed twice (a threshold counts distinct signers)");
      }
    }
    out.push_back(std::move(id));
  }
  return out;
}

StatusOr<std::shared_ptr<const sigstore::TrustedRoot>> LoadTrustedRoot(const std::string& path,
                                                                       const std::string& base_dir,
                                                                       std::string* file_bytes) {
  if (path.empty()) {
    PC_ASSIGN_OR_RETURN(sigstore::TrustedRoot root, sigstore::TrustedRoot::PublicGood());
    return std::make_shared<const sigstore::TrustedRoot>(std::move(root));
  }
  const std::string resolved = ResolvePath(path, base_dir);
  PC_ASSIGN_OR_RETURN(std::string text, keys::ReadSmallFile(resolved, 4 << 20));
  auto root = sigstore::TrustedRoot::Parse(text);
  if (!root.ok()) return root.status().Annotate(resolved);
  if (file_bytes != nullptr) *file_bytes = std::move(text);
  return std::make_shared<const sigstore::TrustedRoot>(std::move(*root));
}

StatusOr<std::shared_ptr<const sigstore::TrustedRoot>> PolicyTrustedRoot(const json& j, const std::string& origin,
                                                                         const std::string& base_dir, bool needed,
                                                                         std::vector<std::string>& version_parts,
                                                                         std::string& where) {
  std::string path;
  where = "built-in public-good";
  if (auto tr = j.find("trusted_root"); tr != j.end()) {
    if (!tr->is_string() || tr->get<std::string>().empty()) {
      return FieldError(origin, "trusted_root", "must be a non-empty string (a trusted_root.json path)");
    }
    path = tr->get<std::string>();
    where = "file " + ResolvePath(path, base_dir);
  }
  if (!needed && path.empty()) return std::shared_ptr<const sigstore::TrustedRoot>();
  std::string bytes;
  auto root = LoadTrustedRoot(path, base_dir, &bytes);
  if (!root.ok()) return FieldError(origin, "trusted_root", root.status().message());
  if (!path.empty()) {
    version_parts.push_back(where);
    version_parts.push_back(bytes);
  }
  return root;
}

void CheckBundleForRule(const FoundSignature& sig, const sigstore::TrustedRoot& root, const oci::Digest& digest,
                        const std::vector<const TrustedKey*>& keys, const std::vector<KeylessIdentity>& identities,
                        std::vector<bool>& key_ok, std::vector<bool>& id_ok, std::vector<std::string>& outcome,
                        std::vector<std::string>& refusals) {
  // False: the bundle is unusable for anyone, stop.
  auto one = [&](const std::string& who, const BundleCheck& c, std::vector<bool>& ok, size_t j) {
    switch (c.kind) {
      case BundleCheck::Kind::kVerified:
        ok[j] = true;
        outcome.push_back("verified by " + who);
        return true;
      case BundleCheck::Kind::kUnreadable:
        outcome.push_back("unusable: " + c.detail);
        return false;
      case BundleCheck::Kind::kOtherMode:
        return true;
      case BundleCheck::Kind::kRefused:
        refusals.push_back("bundle not verified for " + who + ": " + c.detail);
        outcome.push_back("not verified for " + who + ": " + c.detail);
        return true;
    }
    return true;
  };
  for (size_t j = 0; j < keys.size(); ++j) {
    if (!one(keys[j]->name, CheckBundle(sig, root, digest, nullptr, &keys[j]->der), key_ok, j)) return;
  }
  for (size_t j = 0; j < identities.size(); ++j) {
    const KeylessIdentity& id = identities[j];
    if (!one(id.Label(), CheckBundle(sig, root, digest, &id, nullptr), id_ok, j)) return;
  }
}

}  // namespace portcullis::verifier::internal
