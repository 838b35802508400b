#include "signer/sig_manifest.h"

#include <nlohmann/json.hpp>

#include "oci/digest.h"
#include "oci/json_fields.h"
#include "signer/go_json.h"

namespace portcullis::signer {

namespace {

using nlohmann::json;

void AppendDescriptor(std::string& out, const GoDescriptor& d) {
  out += "{\"mediaType\":";
  AppendGoString(out, d.media_type);
  out += ",\"size\":" + std::to_string(d.size) + ",\"digest\":";
  AppendGoString(out, d.digest);
  if (!d.urls.empty()) {
    out += ",\"urls\":[";
    for (size_t i = 0; i < d.urls.size(); ++i) {
      if (i > 0) out += ",";
      AppendGoString(out, d.urls[i]);
    }
    out += "]";
  }
  if (!d.annotations.empty()) {
    out += ",\"annotations\":";
    AppendGoStringMap(out, d.annotations);
  }
  if (!d.artifact_type.empty()) {
    out += ",\"artifactType\":";
    AppendGoString(out, d.artifact_type);
  }
  out += "}";
}

StatusOr<GoDescriptor> ParseDescriptor(const json& j, const std::string& where) {
  if (!j.is_object()) return Status::ManifestInvalid(where + " is not an object");
  GoDescriptor d;
  auto str = [&](const char* key, std::string* dst) -> Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return Status::Ok();
    if (!it->is_string()) return Status::ManifestInvalid(where + "." + key + " is not a string");
    *dst = it->get<std::string>();
    return Status::Ok();
  };
  PC_RETURN_IF_ERROR(str("mediaType", &d.media_type));
  PC_RETURN_IF_ERROR(str("digest", &d.digest));
  PC_RETURN_IF_ERROR(str("artifactType", &d.artifact_type));
  if (!oci::Digest::Parse(d.digest).ok()) return Status::ManifestInvalid(where + " has no valid digest");
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_integer() || size->get<int64_t>() < 0) {
    return Status::ManifestInvalid(where + " has no valid size");
  }
  d.size = size->get<int64_t>();
  if (auto u = j.find("urls"); u != j.end() && !u->is_null()) {
    if (!u->is_array()) return Status::ManifestInvalid(where + ".urls is not an array");
    for (const json& s : *u) {
      if (!s.is_string()) return Status::ManifestInvalid(where + ".urls has a non-string");
      d.urls.push_back(s.get<std::string>());
    }
  }
  if (auto a = j.find("annotations"); a != j.end() && !a->is_null()) {
    if (!a->is_object()) return Status::ManifestInvalid(where + ".annotations is not an object");
    for (const auto& [k, v] : a->items()) {
      if (!v.is_string()) return Status::ManifestInvalid(where + ".annotations[\"" + k + "\"] is not a string");
      d.annotations[k] = v.get<std::string>();
    }
  }
  return d;
}

}  // namespace

std::string MarshalSigManifest(const SigManifest& m) {
  std::string out = "{\"schemaVersion\":2";
  if (!m.media_type.empty()) {
    out += ",\"mediaType\":";
    AppendGoString(out, m.media_type);
  }
  out += ",\"config\":";
  AppendDescriptor(out, m.config);
  out += ",\"layers\":[";
  for (size_t i = 0; i < m.layers.size(); ++i) {
    if (i > 0) out += ",";
    AppendDescriptor(out, m.layers[i]);
  }
  out += "]";
  if (!m.annotations.empty()) {
    out += ",\"annotations\":";
    AppendGoStringMap(out, m.annotations);
  }
  if (m.subject) {
    out += ",\"subject\":";
    AppendDescriptor(out, *m.subject);
  }
  out += "}";
  return out;
}

StatusOr<SigManifest> ParseSigManifest(std::string_view bytes) {
  json j = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::ManifestInvalid("signature manifest is not a JSON object");
  SigManifest m;
  if (const json* mt = oci::FindField(j, "mediaType"); mt != nullptr && !mt->is_null()) {  // null: absent, as in Go
    if (!mt->is_string()) return Status::ManifestInvalid("signature manifest mediaType is not a string");
    m.media_type = mt->get<std::string>();
  }
  auto config = j.find("config");
  if (config == j.end()) return Status::ManifestInvalid("signature manifest has no config");
  PC_ASSIGN_OR_RETURN(m.config, ParseDescriptor(*config, "config"));
  auto layers = j.find("layers");
  if (layers == j.end() || !layers->is_array())
    return Status::ManifestInvalid("signature manifest has no layers array");
  for (size_t i = 0; i < layers->size(); ++i) {
    PC_ASSIGN_OR_RETURN(GoDescriptor d, ParseDescriptor((*layers)[i], "layers[" + std::to_string(i) + "]"));
    m.layers.push_back(std::move(d));
  }
  if (auto a = j.find("annotations"); a != j.end() && a->is_object()) {
    for (const auto& [k, v] : a->items()) {
      if (v.is_string()) m.annotations[k] = v.get<std::string>();
    }
  }
  if (auto s = j.find("subject"); s != j.end() && !s->is_null()) {
    PC_ASSIGN_OR_RETURN(GoDescriptor d, ParseDescriptor(*s, "subject"));
    m.subject = std::move(d);
  }
  return m;
}

std::string SigConfigBlob(const std::vector<std::string>& layer_digests) {
  std::string out = "{\"architecture\":\"\",\"created\":\"0001-01-01T00:00:00Z\"";
  if (!layer_digests.empty()) {
    out += ",\"history\":[";
    for (size_t i = 0; i < layer_digests.size(); ++i) {
      if (i > 0) out += ",";
      out += "{\"created\":\"0001-01-01T00:00:00Z\"}";
    }
    out += "]";
  }
  out += ",\"os\":\"\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":";
  if (layer_digests.empty()) {
    out += "null";
  } else {
    out += "[";
    for (size_t i = 0; i < layer_digests.size(); ++i) {
      if (i > 0) out += ",";
      AppendGoString(out, layer_digests[i]);
    }
    out += "]";
  }
  out += "},\"config\":{}}";
  return out;
}

}  // namespace portcullis::signer
