// containers-policy.json internals shared by policy_containers.cc (scopes and
// evaluation) and policy_containers_parse.cc (requirements); not public API.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "verifier/identity.h"
#include "verifier/legacy_keyless.h"
#include "verifier/policy_internal.h"

namespace portcullis::verifier::internal {

struct Requirement {
  enum class Type { kInsecureAcceptAnything, kReject, kSigstoreSigned };
  Type type = Type::kReject;
  std::vector<TrustedKey> keys;           // sigstoreSigned with keys
  std::optional<FulcioTrust> fulcio;       // sigstoreSigned with fulcio (then `keys` is empty)
  std::vector<sigstore::PKey> rekor_keys;  // rekorPublicKey*: a Rekor SET is required
  SignedIdentity identity;                 // sigstoreSigned
};
using Requirements = std::vector<Requirement>;

struct Ctx {
  const std::string& origin;
  const std::string& base_dir;
  std::vector<std::string>& version_parts;
};

// "<origin>: <field>: <msg>" as INVALID_ARGUMENT.
Status FieldError(const Ctx& c, const std::string& field, const std::string& msg);
// JSON string literal of `s`, for messages.
std::string Quote(const std::string& s);

// A docker transport requirement list (non-empty; every requirement parsed and
// its keys, CA certificates and Rekor keys loaded); errors name `where`.
StatusOr<Requirements> ParseList(const Ctx& c, const std::string& where, const nlohmann::json& j);
// The requirement list of a transport Portcullis does not serve: its shape and
// requirement types only.
Status CheckForeignList(const Ctx& c, const std::string& where, const nlohmann::json& j);

}  // namespace portcullis::verifier::internal
