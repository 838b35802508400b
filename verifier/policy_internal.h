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
#include "verifier/bundle_check.h"
#include "verifier/legacy_keyless.h"
#include "verifier/policy.h"
#include "verifier/sigstore/trusted_root.h"
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

// The strings of `v` joined by `sep` (for messages and labels).
inline std::string JoinList(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

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

// "<origin>: <field>: <msg>" as INVALID_ARGUMENT.
Status FieldError(const std::string& origin, const std::string& field, const std::string& msg);
// INVALID_ARGUMENT naming the first field of `obj` not in `allowed`.
Status CheckFields(const std::string& origin, const std::string& where, const nlohmann::json& obj,
                   std::initializer_list<const char*> allowed);

// Most identities one rule lists.
inline constexpr size_t kMaxRuleIdentities = 16;
// A rule's require.identities (policy_keyless.cc): unknown fields, bad regular
// expressions, a missing or doubled subject/issuer are errors naming `where`.
StatusOr<std::vector<KeylessIdentity>> ParseIdentities(const nlohmann::json& list, const std::string& origin,
                                                       const std::string& where);
// The trusted root bundles are verified against: the file `path` (relative to
// `base_dir`; its bytes into `file_bytes`), or the built-in public-good root
// when `path` is empty.
StatusOr<std::shared_ptr<const sigstore::TrustedRoot>> LoadTrustedRoot(const std::string& path,
                                                                       const std::string& base_dir,
                                                                       std::string* file_bytes);

// The top-level "trusted_root" of a Portcullis policy, loaded when `needed`
// (some rule requires signatures) or named; a named file's path and bytes are
// appended to `version_parts`; `where` describes it for Explain. Null when
// neither.
StatusOr<std::shared_ptr<const sigstore::TrustedRoot>> PolicyTrustedRoot(const nlohmann::json& j,
                                                                         const std::string& origin,
                                                                         const std::string& base_dir, bool needed,
                                                                         std::vector<std::string>& version_parts,
                                                                         std::string& where);

// The Sigstore bundle `sig` against each of `keys` (key-based bundles) and
// `identities` (keyless ones): sets key_ok[j] / id_ok[j] for those it verifies
// for, appends one outcome per key/identity tried, and a reason per refusal.
void CheckBundleForRule(const FoundSignature& sig, const sigstore::TrustedRoot& root, const oci::Digest& digest,
                        const std::vector<const TrustedKey*>& keys, const std::vector<KeylessIdentity>& identities,
                        std::vector<bool>& key_ok, std::vector<bool>& id_ok, std::vector<std::string>& outcome,
                        std::vector<std::string>& refusals);

// containers-policy.json sigstoreSigned: the Rekor public keys of the
// requirement `req` (empty when it names none; at most one of the four fields;
// each key PEM and ECDSA) and its "fulcio" object `j` (exactly one of caPath and
// caData holding PEM certificates, oidcIssuer and subjectEmail non-empty, no
// other field). Files are resolved against `base_dir`; their paths and bytes
// (and inline data) go into `version_parts`. Errors name `where`.
StatusOr<std::vector<sigstore::PKey>> ParseRekorKeys(const std::string& origin, const std::string& base_dir,
                                                     const std::string& where, const nlohmann::json& req,
                                                     std::vector<std::string>& version_parts);
StatusOr<FulcioTrust> ParseFulcio(const std::string& origin, const std::string& base_dir, const std::string& where,
                                  const nlohmann::json& j, std::vector<std::string>& version_parts);

StatusOr<std::shared_ptr<const Policy>> ParsePortcullisPolicy(const nlohmann::json& j, const std::string& text,
                                                              const std::string& origin, const std::string& base_dir);
StatusOr<std::shared_ptr<const Policy>> ParseContainersPolicy(const nlohmann::json& j, const std::string& text,
                                                              const std::string& origin, const std::string& base_dir);

}  // namespace portcullis::verifier::internal
