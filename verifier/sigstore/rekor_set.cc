#include "verifier/sigstore/rekor_set.h"

#include "verifier/sigstore/rekor_body.h"
#include "verifier/sigstore/tlog.h"
#include "verifier/strict_json.h"

namespace portcullis::verifier::sigstore {

namespace {

using nlohmann::json;

bool OnlyFields(const json& obj, std::initializer_list<const char*> want) {
  if (!obj.is_object() || obj.size() != want.size()) return false;
  for (const char* k : want) {
    if (!obj.contains(k)) return false;
  }
  return true;
}

StatusOr<int64_t> NonNegativeInt(const json& v, const char* name) {
  if (v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v.get<uint64_t>());
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return v.get<int64_t>();
  return Status::InvalidArgument(std::string("Rekor bundle: Payload.") + name + " is not a non-negative integer");
}

StatusOr<std::string> FromHex(const std::string& s) {
  if (s.empty() || s.size() % 2 != 0 || s.size() > 128) return Status::InvalidArgument("Rekor bundle: bad logID");
  std::string out;
  for (size_t i = 0; i < s.size(); i += 2) {
    auto nib = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int hi = nib(s[i]), lo = nib(s[i + 1]);
    if (hi < 0 || lo < 0) return Status::InvalidArgument("Rekor bundle: logID is not lowercase hex");
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

StatusOr<TlogEntry> ParseRekorSetImpl(std::string_view annotation) {
  if (annotation.size() > kMaxRekorSetBytes) return Status::InvalidArgument("Rekor bundle is too large");
  auto parsed = ParseStrictJson(annotation);
  if (!parsed.ok()) return Status::InvalidArgument("Rekor bundle: " + parsed.status().message());
  const json& j = *parsed;
  if (!OnlyFields(j, {"SignedEntryTimestamp", "Payload"})) {
    return Status::InvalidArgument("Rekor bundle: want exactly the fields SignedEntryTimestamp and Payload");
  }
  const json& set = j["SignedEntryTimestamp"];
  const json& p = j["Payload"];
  if (!set.is_string()) return Status::InvalidArgument("Rekor bundle: SignedEntryTimestamp is not a string");
  if (!OnlyFields(p, {"body", "integratedTime", "logIndex", "logID"})) {
    return Status::InvalidArgument("Rekor bundle: want exactly the Payload fields body, integratedTime, logIndex, logID");
  }
  if (!p["body"].is_string() || !p["logID"].is_string()) {
    return Status::InvalidArgument("Rekor bundle: Payload.body and Payload.logID must be strings");
  }
  TlogEntry e;
  PC_ASSIGN_OR_RETURN(e.signed_entry_timestamp, DecodeBase64(set.get<std::string>(), "Rekor bundle SignedEntryTimestamp"));
  PC_ASSIGN_OR_RETURN(e.body, DecodeBase64(p["body"].get<std::string>(), "Rekor bundle Payload.body"));
  PC_ASSIGN_OR_RETURN(int64_t t, NonNegativeInt(p["integratedTime"], "integratedTime"));
  e.integrated_time = t;
  PC_ASSIGN_OR_RETURN(e.log_index, NonNegativeInt(p["logIndex"], "logIndex"));
  PC_ASSIGN_OR_RETURN(e.log_id, FromHex(p["logID"].get<std::string>()));
  if (e.signed_entry_timestamp.empty()) return Status::InvalidArgument("Rekor bundle: empty SignedEntryTimestamp");
  // kind and apiVersion as the body states them (checked by CheckSetBody).
  auto body = ParseStrictJson(e.body);
  if (body.ok() && body->is_object()) {
    if (auto k = body->find("kind"); k != body->end() && k->is_string()) e.kind = k->get<std::string>();
    if (auto v = body->find("apiVersion"); v != body->end() && v->is_string()) e.version = v->get<std::string>();
  }
  return e;
}

}  // namespace

StatusOr<TlogEntry> ParseRekorSetAnnotation(std::string_view annotation) {
  try {
    return ParseRekorSetImpl(annotation);
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("Rekor bundle is malformed: ") + e.what());
  }
}

Status VerifySetWithKeys(const TlogEntry& entry, const std::vector<PKey>& log_keys) {
  for (const PKey& k : log_keys) {
    LogInstance log;
    log.base_url = "the configured Rekor key";
    log.key = k;
    if (VerifySignedEntryTimestamp(entry, log).ok()) return Status::Ok();
  }
  return Status::Denied("the Rekor signed entry timestamp does not verify with " +
                        std::string(log_keys.size() == 1 ? "the trusted Rekor key" : "any trusted Rekor key"));
}

Status CheckSetBody(const TlogEntry& entry, std::string_view signature, const std::string& verifier_der, bool is_cert,
                    std::string_view payload) {
  if (entry.kind != "hashedrekord" || entry.version != "0.0.1") {
    return Status::Denied("the Rekor entry is not a hashedrekord 0.0.1 (" + entry.kind.substr(0, 40) + " " +
                          entry.version.substr(0, 20) + ")");
  }
  EntryExpectation want;
  want.signature = std::string(signature);
  want.verifier_der = verifier_der;
  want.verifier_is_cert = is_cert;
  want.artifact_sha256 = Sha256(payload);
  Status st = CheckEntryBody(entry, want);
  if (!st.ok()) return Status::Denied("the Rekor entry does not log this signature: " + st.message());
  return Status::Ok();
}

}  // namespace portcullis::verifier::sigstore
