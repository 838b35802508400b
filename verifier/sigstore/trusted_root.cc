#include "verifier/sigstore/trusted_root.h"

#include "verifier/sigstore/json_util.h"
#include "verifier/strict_json.h"

namespace portcullis::verifier::sigstore {

namespace {

using nlohmann::json;

constexpr std::string_view kMediaType = "application/vnd.dev.sigstore.trustedroot+json;version=0.1";
constexpr size_t kMaxRootEntries = 64;

StatusOr<TimeRange> ParseValidFor(const json& parent, const std::string& where) {
  const json* v = Field(parent, "validFor");
  if (v == nullptr || !v->is_object()) return Status::InvalidArgument(where + ".validFor missing");
  TimeRange r;
  const json* start = Field(*v, "start");
  if (start == nullptr || !start->is_string()) {
    return Status::InvalidArgument(where + ".validFor has no start (a validity without a start is refused)");
  }
  PC_ASSIGN_OR_RETURN(r.start, ParseRfc3339(start->get_ref<const std::string&>()));
  if (const json* end = Field(*v, "end")) {
    if (!end->is_string()) return Status::InvalidArgument(where + ".validFor.end is not a string");
    PC_ASSIGN_OR_RETURN(int64_t e, ParseRfc3339(end->get_ref<const std::string&>()));
    if (e < r.start) return Status::InvalidArgument(where + ".validFor ends before it starts");
    r.end = e;
  }
  return r;
}

std::string HostOf(const std::string& url) {
  std::string_view s = url;
  if (size_t p = s.find("://"); p != std::string_view::npos) s.remove_prefix(p + 3);
  if (size_t p = s.find('/'); p != std::string_view::npos) s = s.substr(0, p);
  return std::string(s);
}

StatusOr<LogInstance> ParseLog(const json& j, const std::string& where) {
  if (!j.is_object()) return Status::InvalidArgument(where + " is not an object");
  LogInstance log;
  PC_ASSIGN_OR_RETURN(log.base_url, String(j, "baseUrl", where));
  log.host = HostOf(log.base_url);
  if (const json* h = Field(j, "hashAlgorithm"); h != nullptr && (!h->is_string() || *h != "SHA2_256")) {
    return Status::InvalidArgument("unsupported: " + where + ".hashAlgorithm (only SHA2_256)");
  }
  PC_ASSIGN_OR_RETURN(const json* pk, Object(j, "publicKey", where));
  PC_ASSIGN_OR_RETURN(std::string raw, Bytes(*pk, "rawBytes", where + ".publicKey"));
  if (const json* d = Field(*pk, "keyDetails"); d != nullptr && d->is_string()) log.key_details = *d;
  auto key = ParsePublicKeyDer(raw, /*allow_pkcs1_rsa=*/true);
  if (!key.ok()) return Status::InvalidArgument(where + ".publicKey.rawBytes is not a public key");
  log.key = *key;
  PC_ASSIGN_OR_RETURN(log.valid_for, ParseValidFor(*pk, where + ".publicKey"));
  PC_ASSIGN_OR_RETURN(const json* id, Object(j, "logId", where));
  PC_ASSIGN_OR_RETURN(log.log_id, Bytes(*id, "keyId", where + ".logId"));
  if (log.log_id.empty()) return Status::InvalidArgument(where + ".logId.keyId is empty");
  return log;
}

StatusOr<CertAuthority> ParseAuthority(const json& j, const std::string& where) {
  if (!j.is_object()) return Status::InvalidArgument(where + " is not an object");
  CertAuthority ca;
  if (const json* u = Field(j, "uri"); u != nullptr && u->is_string()) ca.uri = *u;
  PC_ASSIGN_OR_RETURN(const json* chain, Object(j, "certChain", where));
  const json* certs = Field(*chain, "certificates");
  if (certs == nullptr || !certs->is_array() || certs->empty() || certs->size() > 10) {
    return Status::InvalidArgument(where + ".certChain.certificates must hold 1 to 10 certificates");
  }
  for (size_t i = 0; i < certs->size(); ++i) {
    std::string w = where + ".certChain.certificates[" + std::to_string(i) + "]";
    PC_ASSIGN_OR_RETURN(std::string der, Bytes((*certs)[i], "rawBytes", w));
    auto cert = ParseCertDer(der);
    if (!cert.ok()) return Status::InvalidArgument(w + " is not a DER certificate");
    ca.chain.push_back(*cert);
  }
  PC_ASSIGN_OR_RETURN(ca.valid_for, ParseValidFor(j, where));
  return ca;
}

template <typename T, typename F>
Status ParseList(const json& root, const char* key, std::vector<T>& out, F parse) {
  const json* list = Field(root, key);
  if (list == nullptr) return Status::Ok();
  if (!list->is_array()) return Status::InvalidArgument(std::string(key) + " is not an array");
  if (list->size() > kMaxRootEntries) return Status::InvalidArgument(std::string(key) + " has too many entries");
  for (size_t i = 0; i < list->size(); ++i) {
    PC_ASSIGN_OR_RETURN(T item, parse((*list)[i], std::string(key) + "[" + std::to_string(i) + "]"));
    out.push_back(std::move(item));
  }
  return Status::Ok();
}

StatusOr<TrustedRoot> ParseTrustedRootImpl(std::string_view text) {
  PC_ASSIGN_OR_RETURN(json j, ParseStrictJson(text));
  if (!j.is_object()) return Status::InvalidArgument("trusted root is not a JSON object");
  PC_ASSIGN_OR_RETURN(std::string media_type, String(j, "mediaType", "trusted root"));
  if (media_type != kMediaType) {
    return Status::InvalidArgument("unsupported: trusted root media type \"" + media_type + "\"");
  }
  TrustedRoot root;
  PC_RETURN_IF_ERROR(ParseList(j, "tlogs", root.tlogs, ParseLog));
  PC_RETURN_IF_ERROR(ParseList(j, "ctlogs", root.ctlogs, ParseLog));
  PC_RETURN_IF_ERROR(ParseList(j, "certificateAuthorities", root.certificate_authorities, ParseAuthority));
  PC_RETURN_IF_ERROR(ParseList(j, "timestampAuthorities", root.timestamp_authorities, ParseAuthority));
  if (root.tlogs.empty() && root.timestamp_authorities.empty()) {
    return Status::InvalidArgument("trusted root has neither transparency logs nor timestamp authorities");
  }
  return root;
}

}  // namespace

StatusOr<TrustedRoot> TrustedRoot::Parse(std::string_view json_text) {
  try {
    auto r = ParseTrustedRootImpl(json_text);
    if (!r.ok()) return r.status().Annotate("trusted root");
    return r;
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("trusted root: malformed: ") + e.what());
  }
}

StatusOr<TrustedRoot> TrustedRoot::PublicGood() { return Parse(PublicGoodTrustedRootJson()); }

const LogInstance* TrustedRoot::FindTlog(std::string_view log_id) const {
  for (const auto& l : tlogs) {
    if (l.log_id == log_id) return &l;
  }
  return nullptr;
}

const LogInstance* TrustedRoot::FindCtlog(std::string_view log_id) const {
  for (const auto& l : ctlogs) {
    if (l.log_id == log_id) return &l;
  }
  return nullptr;
}

}  // namespace portcullis::verifier::sigstore
