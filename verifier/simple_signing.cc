#include "verifier/simple_signing.h"

#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include "oci/base64.h"
#include "verifier/strict_json.h"

namespace portcullis::verifier {

namespace {

using nlohmann::json;

Status Refuse(const std::string& msg) { return Status::Denied("payload: " + msg); }

// The object `j` (at `where`) has exactly the keys in `want`.
Status ExactKeys(const json& j, const std::string& where, std::initializer_list<std::string_view> want) {
  if (!j.is_object()) return Refuse(where + " is not a JSON object");
  for (const auto& [k, v] : j.items()) {
    bool known = false;
    for (auto w : want) known = known || k == w;
    if (!known) return Refuse(where + ": unknown key \"" + k + "\"");
  }
  for (auto w : want) {
    if (!j.contains(std::string(w))) return Refuse(where + ": key \"" + std::string(w) + "\" is missing");
  }
  return Status::Ok();
}

StatusOr<std::string> StringField(const json& obj, const std::string& where, const char* key) {
  const json& v = obj.at(key);
  if (!v.is_string()) return Refuse(where + "." + key + " is not a string");
  return v.get<std::string>();
}

// An integral JSON number as int64 (containers/image decodes a float64 and
// refuses a fractional part).
std::optional<int64_t> IntegralNumber(const json& v) {
  if (v.is_number_integer() && !v.is_number_unsigned()) return v.get<int64_t>();
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (!std::isfinite(d) || std::trunc(d) != d || d < -9.2e18 || d > 9.2e18) return std::nullopt;
    return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

}  // namespace

StatusOr<SimpleSigningPayload> ParseSimpleSigningPayload(std::string_view payload) {
  auto parsed = ParseStrictJson(payload);  // duplicate keys refused, as Go's decoder does
  if (!parsed.ok()) return Refuse(parsed.status().message());
  const json& j = *parsed;
  PC_RETURN_IF_ERROR(ExactKeys(j, "top level", {"critical", "optional"}));

  SimpleSigningPayload out;
  const json& optional = j.at("optional");
  if (!optional.is_null()) {
    if (!optional.is_object()) return Refuse("optional is neither null nor an object");
    if (auto c = optional.find("creator"); c != optional.end()) {
      if (!c->is_string()) return Refuse("optional.creator is not a string");
      out.creator = c->get<std::string>();
    }
    if (auto t = optional.find("timestamp"); t != optional.end()) {
      auto ts = IntegralNumber(*t);
      if (!ts) return Refuse("optional.timestamp is not an integer");
      out.timestamp = *ts;
    }
  }
  out.optional = optional;

  const json& critical = j.at("critical");
  PC_RETURN_IF_ERROR(ExactKeys(critical, "critical", {"type", "image", "identity"}));
  PC_ASSIGN_OR_RETURN(std::string type, StringField(critical, "critical", "type"));
  if (type != kCosignSignatureType)
    return Refuse("critical.type \"" + type + "\" is not \"" + std::string(kCosignSignatureType) + "\"");

  const json& image = critical.at("image");
  PC_RETURN_IF_ERROR(ExactKeys(image, "critical.image", {"docker-manifest-digest"}));
  PC_ASSIGN_OR_RETURN(std::string digest, StringField(image, "critical.image", "docker-manifest-digest"));
  auto d = oci::Digest::Parse(digest);
  if (!d.ok()) return Refuse("critical.image.docker-manifest-digest: " + d.status().message());
  out.manifest_digest = *d;

  const json& identity = critical.at("identity");
  PC_RETURN_IF_ERROR(ExactKeys(identity, "critical.identity", {"docker-reference"}));
  PC_ASSIGN_OR_RETURN(out.docker_reference, StringField(identity, "critical.identity", "docker-reference"));
  if (out.docker_reference.empty()) return Refuse("critical.identity.docker-reference is empty");
  return out;
}

StatusOr<SimpleSigningPayload> VerifySimpleSigning(std::string_view payload, std::string_view signature_b64,
                                                   const keys::PublicKey& key, const oci::Digest& expected_digest) {
  std::string b64;
  for (char c : signature_b64) {
    if (c != '\r' && c != '\n') b64.push_back(c);
  }
  if (b64.empty()) return Status::Denied("signature: the layer has no signature annotation");
  auto sig = oci::Base64Decode(b64);
  if (!sig) return Status::Denied("signature: not standard base64");
  Status st = key.Verify(payload, *sig);
  if (!st.ok()) return Status::Denied("signature: " + st.message());
  PC_ASSIGN_OR_RETURN(SimpleSigningPayload p, ParseSimpleSigningPayload(payload));
  if (p.manifest_digest != expected_digest) {
    return Status::Denied("payload: signs " + p.manifest_digest.ToString() + ", not the image " +
                          expected_digest.ToString());
  }
  return p;
}

}  // namespace portcullis::verifier
