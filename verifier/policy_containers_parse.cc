// containers-policy.json requirements (containers/image
// signature/policy_config.go, policy_config_sigstore.go): parsing and loading the
// keys, signed identities, Fulcio CA and Rekor keys they name. See verifier/policy.md.
#include "oci/base64.h"
#include "verifier/policy_containers_internal.h"

namespace portcullis::verifier::internal {

using nlohmann::json;

Status FieldError(const Ctx& c, const std::string& field, const std::string& msg) {
  return Status::InvalidArgument(c.origin + ": " + field + ": " + msg);
}

std::string Quote(const std::string& s) { return json(s).dump(); }

namespace {

Status OnlyFields(const Ctx& c, const std::string& where, const json& obj, std::initializer_list<const char*> allowed) {
  for (const auto& [k, v] : obj.items()) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || k == a;
    if (!ok) return FieldError(c, where, "unknown field " + Quote(k));
  }
  return Status::Ok();
}

StatusOr<std::string> NonEmptyString(const Ctx& c, const std::string& where, const json& v) {
  if (!v.is_string() || v.get<std::string>().empty()) return FieldError(c, where, "must be a non-empty string");
  return v.get<std::string>();
}

// Go decodes a JSON string into []byte as standard base64 (CR and LF skipped).
StatusOr<std::string> KeyBytes(const Ctx& c, const std::string& where, const json& v) {
  if (!v.is_string()) return FieldError(c, where, "must be a base64 string, not " + TypeOf(v));
  std::string b64;
  for (char ch : v.get<std::string>()) {
    if (ch != '\r' && ch != '\n') b64.push_back(ch);
  }
  auto raw = oci::Base64Decode(b64);
  if (!raw) return FieldError(c, where, "is not standard base64 (keyData holds base64 of the PEM public key)");
  return *raw;
}

StatusOr<TrustedKey> KeyFromFile(const Ctx& c, const std::string& where, const std::string& path) {
  std::string bytes;
  auto k = LoadKeyFile("keyPath " + path, path, c.base_dir, &bytes);
  if (!k.ok()) return FieldError(c, where, k.status().message());
  c.version_parts.push_back(k->where);
  c.version_parts.push_back(bytes);
  return k;
}

StatusOr<TrustedKey> KeyFromData(const Ctx& c, const std::string& where, const std::string& label, const json& v) {
  PC_ASSIGN_OR_RETURN(std::string pem, KeyBytes(c, where, v));
  auto k = LoadKeyPem(label, pem);
  if (!k.ok()) return FieldError(c, where, k.status().message());
  return k;
}

StatusOr<SignedIdentity> ParseIdentity(const Ctx& c, const std::string& where, const json& j) {
  if (!j.is_object()) return FieldError(c, where, "must be an object, not " + TypeOf(j));
  auto t = j.find("type");
  if (t == j.end() || !t->is_string()) return FieldError(c, where + ".type", "missing or not a string");
  const std::string type = t->get<std::string>();
  SignedIdentity id;
  if (type == "matchRepoDigestOrExact" || type == "matchExact" || type == "matchRepository") {
    PC_RETURN_IF_ERROR(OnlyFields(c, where, j, {"type"}));
    id.type = type == "matchExact"        ? SignedIdentity::Type::kMatchExact
              : type == "matchRepository" ? SignedIdentity::Type::kMatchRepository
                                          : SignedIdentity::Type::kMatchRepoDigestOrExact;
  } else if (type == "exactReference") {
    PC_RETURN_IF_ERROR(OnlyFields(c, where, j, {"type", "dockerReference"}));
    id.type = SignedIdentity::Type::kExactReference;
    auto v = j.find("dockerReference");
    if (v == j.end()) return FieldError(c, where, "\"dockerReference\" is missing");
    PC_ASSIGN_OR_RETURN(id.docker_reference, NonEmptyString(c, where + ".dockerReference", *v));
  } else if (type == "exactRepository") {
    PC_RETURN_IF_ERROR(OnlyFields(c, where, j, {"type", "dockerRepository"}));
    id.type = SignedIdentity::Type::kExactRepository;
    auto v = j.find("dockerRepository");
    if (v == j.end()) return FieldError(c, where, "\"dockerRepository\" is missing");
    PC_ASSIGN_OR_RETURN(id.docker_repository, NonEmptyString(c, where + ".dockerRepository", *v));
  } else if (type == "remapIdentity") {
    PC_RETURN_IF_ERROR(OnlyFields(c, where, j, {"type", "prefix", "signedPrefix"}));
    id.type = SignedIdentity::Type::kRemapIdentity;
    auto p = j.find("prefix"), s = j.find("signedPrefix");
    if (p == j.end()) return FieldError(c, where, "\"prefix\" is missing");
    if (s == j.end()) return FieldError(c, where, "\"signedPrefix\" is missing");
    PC_ASSIGN_OR_RETURN(id.prefix, NonEmptyString(c, where + ".prefix", *p));
    PC_ASSIGN_OR_RETURN(id.signed_prefix, NonEmptyString(c, where + ".signedPrefix", *s));
  } else {
    return FieldError(c, where + ".type", "unknown signedIdentity type " + Quote(type));
  }
  if (Status st = ValidateSignedIdentity(id); !st.ok()) return FieldError(c, where, st.message());
  return id;
}

StatusOr<Requirement> ParseRequirement(const Ctx& c, const std::string& where, const json& j) {
  if (!j.is_object()) return FieldError(c, where, "a requirement is an object, not " + TypeOf(j));
  auto t = j.find("type");
  if (t == j.end() || !t->is_string()) return FieldError(c, where + ".type", "missing or not a string");
  const std::string type = t->get<std::string>();
  Requirement r;
  if (type == "insecureAcceptAnything" || type == "reject") {
    PC_RETURN_IF_ERROR(OnlyFields(c, where, j, {"type"}));
    r.type = type == "reject" ? Requirement::Type::kReject : Requirement::Type::kInsecureAcceptAnything;
    return r;
  }
  if (type == "signedBy") {
    return FieldError(c, where,
                      "\"signedBy\" (GPG simple signing) cannot be checked by Portcullis, which verifies cosign "
                      "signatures only; use \"sigstoreSigned\" with a public key");
  }
  if (type == "signedBaseLayer") return FieldError(c, where, "\"signedBaseLayer\" is not supported");
  if (type != "sigstoreSigned") return FieldError(c, where + ".type", "unknown requirement type " + Quote(type));

  PC_RETURN_IF_ERROR(
      OnlyFields(c, where, j,
                 {"type", "keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki", "rekorPublicKeyPath",
                  "rekorPublicKeyPaths", "rekorPublicKeyData", "rekorPublicKeyDatas", "signedIdentity"}));
  if (j.contains("pki")) {
    return FieldError(c, where + ".pki", "X.509 PKI verification is not supported; use a public key or fulcio");
  }
  int sources = 0;
  for (const char* f : {"keyPath", "keyPaths", "keyData", "keyDatas", "fulcio"}) sources += j.contains(f) ? 1 : 0;
  if (sources != 1) {
    return FieldError(c, where,
                      std::string("exactly one of keyPath, keyPaths, keyData, keyDatas and fulcio must be specified, ") +
                          (sources == 0 ? "none is" : "more than one is") + " present");
  }
  r.type = Requirement::Type::kSigstoreSigned;
  PC_ASSIGN_OR_RETURN(r.rekor_keys, ParseRekorKeys(c.origin, c.base_dir, where, j, c.version_parts));
  if (auto v = j.find("fulcio"); v != j.end()) {
    if (r.rekor_keys.empty()) {
      return FieldError(c, where,
                        "at least one of rekorPublicKeyPath, rekorPublicKeyPaths, rekorPublicKeyData and "
                        "rekorPublicKeyDatas must be specified if fulcio is used");
    }
    PC_ASSIGN_OR_RETURN(FulcioTrust f, ParseFulcio(c.origin, c.base_dir, where + ".fulcio", *v, c.version_parts));
    r.fulcio = std::move(f);
  } else if (auto v = j.find("keyPath"); v != j.end()) {
    PC_ASSIGN_OR_RETURN(std::string path, NonEmptyString(c, where + ".keyPath", *v));
    PC_ASSIGN_OR_RETURN(TrustedKey k, KeyFromFile(c, where + ".keyPath", path));
    r.keys.push_back(std::move(k));
  } else if (auto v = j.find("keyPaths"); v != j.end()) {
    if (!v->is_array() || v->empty()) return FieldError(c, where + ".keyPaths", "must be a non-empty array of paths");
    for (size_t i = 0; i < v->size(); ++i) {
      const std::string w = where + ".keyPaths[" + std::to_string(i) + "]";
      PC_ASSIGN_OR_RETURN(std::string path, NonEmptyString(c, w, (*v)[i]));
      PC_ASSIGN_OR_RETURN(TrustedKey k, KeyFromFile(c, w, path));
      r.keys.push_back(std::move(k));
    }
  } else if (auto v = j.find("keyData"); v != j.end()) {
    PC_ASSIGN_OR_RETURN(TrustedKey k, KeyFromData(c, where + ".keyData", "keyData", *v));
    r.keys.push_back(std::move(k));
  } else if (auto v = j.find("keyDatas"); v != j.end()) {
    if (!v->is_array() || v->empty()) {
      return FieldError(c, where + ".keyDatas", "must be a non-empty array of base64 strings");
    }
    for (size_t i = 0; i < v->size(); ++i) {
      const std::string label = "keyDatas[" + std::to_string(i) + "]";
      PC_ASSIGN_OR_RETURN(TrustedKey k, KeyFromData(c, where + "." + label, label, (*v)[i]));
      r.keys.push_back(std::move(k));
    }
  }
  if (auto si = j.find("signedIdentity"); si != j.end()) {
    PC_ASSIGN_OR_RETURN(r.identity, ParseIdentity(c, where + ".signedIdentity", *si));
  }
  return r;
}

}  // namespace

StatusOr<Requirements> ParseList(const Ctx& c, const std::string& where, const json& j) {
  if (!j.is_array()) return FieldError(c, where, "must be an array of requirements, not " + TypeOf(j));
  if (j.empty()) return FieldError(c, where, "the list of requirements must not be empty");
  Requirements out;
  for (size_t i = 0; i < j.size(); ++i) {
    PC_ASSIGN_OR_RETURN(Requirement r, ParseRequirement(c, where + "[" + std::to_string(i) + "]", j[i]));
    out.push_back(std::move(r));
  }
  return out;
}

// Requirements of transports Portcullis does not serve: only their shape is checked.
Status CheckForeignList(const Ctx& c, const std::string& where, const json& j) {
  if (!j.is_array()) return FieldError(c, where, "must be an array of requirements, not " + TypeOf(j));
  if (j.empty()) return FieldError(c, where, "the list of requirements must not be empty");
  for (size_t i = 0; i < j.size(); ++i) {
    const json& r = j[i];
    const std::string w = where + "[" + std::to_string(i) + "]";
    if (!r.is_object()) return FieldError(c, w, "a requirement is an object, not " + TypeOf(r));
    auto t = r.find("type");
    if (t == r.end() || !t->is_string()) return FieldError(c, w + ".type", "missing or not a string");
    static const char* kKnown[] = {"insecureAcceptAnything", "reject", "signedBy", "signedBaseLayer", "sigstoreSigned"};
    bool known = false;
    for (const char* k : kKnown) known = known || *t == k;
    if (!known) return FieldError(c, w + ".type", "unknown requirement type " + t->dump());
  }
  return Status::Ok();
}

}  // namespace portcullis::verifier::internal
