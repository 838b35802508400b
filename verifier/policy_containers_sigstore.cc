// containers-policy.json sigstoreSigned: the "fulcio" object and the Rekor
// public keys (rekorPublicKeyPath / Paths / Data / Datas), parsed as
// containers/image defines them (signature/policy_config_sigstore.go,
// policy_eval_sigstore.go). See verifier/policy.md.
#include <openssl/evp.h>

#include "keys/files.h"
#include "oci/base64.h"
#include "verifier/policy_internal.h"

namespace portcullis::verifier::internal {

namespace {

using nlohmann::json;

constexpr size_t kMaxPemFileBytes = 1 << 20;
constexpr size_t kMaxRekorKeys = 16;
constexpr size_t kMaxCaCertificates = 64;

StatusOr<std::string> NonEmpty(const std::string& origin, const std::string& where, const json& v) {
  if (!v.is_string() || v.get<std::string>().empty()) return FieldError(origin, where, "must be a non-empty string");
  return v.get<std::string>();
}

// Go decodes a JSON string into []byte as standard base64 (CR and LF skipped).
StatusOr<std::string> Base64Bytes(const std::string& origin, const std::string& where, const json& v) {
  if (!v.is_string()) return FieldError(origin, where, "must be a base64 string, not " + TypeOf(v));
  std::string b64;
  for (char ch : v.get<std::string>()) {
    if (ch != '\r' && ch != '\n') b64.push_back(ch);
  }
  auto raw = oci::Base64Decode(b64);
  if (!raw) return FieldError(origin, where, "is not standard base64 (it holds base64 of the PEM text)");
  return *raw;
}

StatusOr<std::string> ReadPemFile(const std::string& origin, const std::string& where, const std::string& path,
                                  const std::string& base_dir, std::vector<std::string>& version_parts) {
  const std::string resolved = ResolvePath(path, base_dir);
  auto text = keys::ReadSmallFile(resolved, kMaxPemFileBytes);
  if (!text.ok()) return FieldError(origin, where, text.status().message());
  version_parts.push_back("file " + resolved);
  version_parts.push_back(*text);
  return text;
}

StatusOr<sigstore::PKey> RekorKey(const std::string& origin, const std::string& where, const std::string& pem) {
  auto k = sigstore::ParsePublicKeyPem(pem);
  if (!k.ok()) return FieldError(origin, where, "parsing Rekor public key: not a PEM public key");
  if (EVP_PKEY_base_id(k->get()) != EVP_PKEY_EC) return FieldError(origin, where, "Rekor public key is not using ECDSA");
  return k;
}

}  // namespace

StatusOr<std::vector<sigstore::PKey>> ParseRekorKeys(const std::string& origin, const std::string& base_dir,
                                                     const std::string& where, const json& req,
                                                     std::vector<std::string>& version_parts) {
  int sources = 0;
  for (const char* f : {"rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData", "rekorPublicKeyDatas"}) {
    sources += req.contains(f) ? 1 : 0;
  }
  if (sources > 1) {
    return FieldError(origin, where,
                      "at most one of rekorPublicKeyPath, rekorPublicKeyPaths, rekorPublicKeyData and "
                      "rekorPublicKeyDatas can be used simultaneously");
  }
  std::vector<sigstore::PKey> out;
  auto list = [&](const char* field, bool paths) -> Status {
    const json& v = req[field];
    const std::string w = where + "." + field;
    if (!v.is_array() || v.empty()) return FieldError(origin, w, "must be a non-empty array");
    if (v.size() > kMaxRekorKeys) return FieldError(origin, w, "more than " + std::to_string(kMaxRekorKeys) + " keys");
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string wi = w + "[" + std::to_string(i) + "]";
      std::string pem;
      if (paths) {
        PC_ASSIGN_OR_RETURN(std::string path, NonEmpty(origin, wi, v[i]));
        PC_ASSIGN_OR_RETURN(pem, ReadPemFile(origin, wi, path, base_dir, version_parts));
      } else {
        PC_ASSIGN_OR_RETURN(pem, Base64Bytes(origin, wi, v[i]));
      }
      PC_ASSIGN_OR_RETURN(sigstore::PKey k, RekorKey(origin, wi, pem));
      out.push_back(std::move(k));
    }
    return Status::Ok();
  };
  if (auto v = req.find("rekorPublicKeyPath"); v != req.end()) {
    PC_ASSIGN_OR_RETURN(std::string path, NonEmpty(origin, where + ".rekorPublicKeyPath", *v));
    PC_ASSIGN_OR_RETURN(std::string pem,
                        ReadPemFile(origin, where + ".rekorPublicKeyPath", path, base_dir, version_parts));
    PC_ASSIGN_OR_RETURN(sigstore::PKey k, RekorKey(origin, where + ".rekorPublicKeyPath", pem));
    out.push_back(std::move(k));
  } else if (auto v = req.find("rekorPublicKeyData"); v != req.end()) {
    PC_ASSIGN_OR_RETURN(std::string pem, Base64Bytes(origin, where + ".rekorPublicKeyData", *v));
    PC_ASSIGN_OR_RETURN(sigstore::PKey k, RekorKey(origin, where + ".rekorPublicKeyData", pem));
    version_parts.push_back(pem);
    out.push_back(std::move(k));
  } else if (req.contains("rekorPublicKeyPaths")) {
    PC_RETURN_IF_ERROR(list("rekorPublicKeyPaths", true));
  } else if (req.contains("rekorPublicKeyDatas")) {
    PC_RETURN_IF_ERROR(list("rekorPublicKeyDatas", false));
  }
  return out;
}

StatusOr<FulcioTrust> ParseFulcio(const std::string& origin, const std::string& base_dir, const std::string& where,
                                  const json& j, std::vector<std::string>& version_parts) {
  if (!j.is_object()) return FieldError(origin, where, "must be an object, not " + TypeOf(j));
  PC_RETURN_IF_ERROR(CheckFields(origin, where, j, {"caPath", "caData", "oidcIssuer", "subjectEmail"}));
  const bool path = j.contains("caPath"), data = j.contains("caData");
  if (path && data) return FieldError(origin, where, "caPath and caData cannot be used simultaneously");
  if (!path && !data) return FieldError(origin, where, "at least one of caPath and caData must be specified");
  std::string pem;
  if (path) {
    PC_ASSIGN_OR_RETURN(std::string p, NonEmpty(origin, where + ".caPath", j["caPath"]));
    PC_ASSIGN_OR_RETURN(pem, ReadPemFile(origin, where + ".caPath", p, base_dir, version_parts));
  } else {
    PC_ASSIGN_OR_RETURN(pem, Base64Bytes(origin, where + ".caData", j["caData"]));
    version_parts.push_back(pem);
  }
  FulcioTrust f;
  const std::string ca_where = where + (path ? ".caPath" : ".caData");
  auto certs = sigstore::ParseCertsPem(pem, kMaxCaCertificates);
  if (!certs.ok()) return FieldError(origin, ca_where, "error loading Fulcio CA certificates: " + certs.status().message());
  if (certs->empty()) return FieldError(origin, ca_where, "error loading Fulcio CA certificates: no PEM certificate");
  f.cas = std::move(*certs);
  auto issuer = j.find("oidcIssuer");
  if (issuer == j.end()) return FieldError(origin, where, "oidcIssuer not specified");
  PC_ASSIGN_OR_RETURN(f.oidc_issuer, NonEmpty(origin, where + ".oidcIssuer", *issuer));
  auto email = j.find("subjectEmail");
  if (email == j.end()) return FieldError(origin, where, "subjectEmail not specified");
  PC_ASSIGN_OR_RETURN(f.subject_email, NonEmpty(origin, where + ".subjectEmail", *email));
  return f;
}

}  // namespace portcullis::verifier::internal
