#include "oci/manifest.h"

#include <nlohmann/json.hpp>

#include "oci/json_fields.h"

namespace portcullis::oci {

using nlohmann::json;

const std::string& ManifestAcceptHeader() {
  static const std::string kAccept = std::string(kOciIndex) + ", " + std::string(kOciManifest) + ", " +
                                     std::string(kDockerManifestList) + ", " + std::string(kDockerManifest);
  return kAccept;
}

bool IsKnownManifestType(std::string_view t) {
  return t == kOciManifest || t == kOciIndex || t == kDockerManifest || t == kDockerManifestList;
}

bool IsIndexType(std::string_view t) { return t == kOciIndex || t == kDockerManifestList; }

std::vector<Descriptor> Manifest::Blobs() const {
  std::vector<Descriptor> out;
  if (config) out.push_back(*config);
  out.insert(out.end(), layers.begin(), layers.end());
  return out;
}

namespace {

std::string StripParams(std::string_view ct) {
  auto semi = ct.find(';');
  std::string_view t = ct.substr(0, semi);
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  return std::string(t);
}

StatusOr<Descriptor> ParseDescriptor(const json& j, const char* where) {
  if (!j.is_object()) return Status::ManifestInvalid(std::string(where) + ": descriptor is not an object");
  Descriptor d;
  if (auto it = j.find("mediaType"); it != j.end() && it->is_string()) d.media_type = *it;
  auto dg = j.find("digest");
  if (dg == j.end() || !dg->is_string()) return Status::ManifestInvalid(std::string(where) + ": descriptor has no digest");
  auto parsed = Digest::Parse(dg->get<std::string>());
  if (!parsed.ok()) return Status::ManifestInvalid(std::string(where) + ": " + parsed.status().message());
  d.digest = *parsed;
  auto sz = j.find("size");
  if (sz == j.end() || !sz->is_number_integer() || sz->get<int64_t>() < 0) {
    return Status::ManifestInvalid(std::string(where) + ": descriptor " + d.digest.ToString() + " has no valid size");
  }
  d.size = sz->get<int64_t>();
  if (auto it = j.find("artifactType"); it != j.end() && it->is_string()) d.artifact_type = *it;
  if (auto it = j.find("annotations"); it != j.end() && it->is_object()) {
    for (auto& [k, v] : it->items()) {
      if (v.is_string()) d.annotations[k] = v.get<std::string>();
    }
  }
  if (auto it = j.find("platform"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return Status::ManifestInvalid(std::string(where) + ": platform is not an object");
    Platform p;
    const std::pair<const char*, std::string*> fields[] = {
        {"os", &p.os}, {"architecture", &p.architecture}, {"variant", &p.variant}};
    for (const auto& [name, field] : fields) {
      if (!FieldPresent(*it, name)) continue;
      auto v = StringField(*it, name);
      if (!v) return Status::ManifestInvalid(std::string(where) + ": platform." + name + " is not a string");
      *field = std::move(*v);
    }
    d.platform = p;
  }
  return d;
}

}  // namespace

StatusOr<Manifest> ParseManifest(std::string_view bytes, std::string_view content_type) {
  if (bytes.size() > kMaxManifestBytes) {
    return Status::ManifestInvalid("manifest is " + std::to_string(bytes.size()) + " bytes, over the 4 MiB limit");
  }
  json j = json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::ManifestInvalid("manifest is not a JSON object");
  Manifest m;
  std::string ct = StripParams(content_type);
  std::string field;
  if (auto it = j.find("mediaType"); it != j.end()) {
    if (!it->is_string()) return Status::ManifestInvalid("manifest mediaType is not a string");
    field = *it;
  }
  if (!field.empty() && !ct.empty() && ct != field && ct != "application/json" && ct != "application/octet-stream") {
    return Status::ManifestInvalid("manifest mediaType \"" + field + "\" disagrees with Content-Type \"" + ct + "\"");
  }
  m.media_type = !field.empty() ? field : ct;
  if (m.media_type.empty() || m.media_type == "application/json") {
    // OCI manifests may omit mediaType; tell them apart by shape.
    m.media_type = j.contains("manifests") ? std::string(kOciIndex) : std::string(kOciManifest);
  }
  if (!IsKnownManifestType(m.media_type)) {
    return Status::ManifestInvalid("unsupported manifest media type \"" + m.media_type.substr(0, 200) + "\"");
  }
  if (auto it = j.find("artifactType"); it != j.end() && it->is_string()) m.artifact_type = *it;
  if (auto it = j.find("annotations"); it != j.end() && it->is_object()) {
    for (auto& [k, v] : it->items()) {
      if (v.is_string()) m.annotations[k] = v.get<std::string>();
    }
  }
  if (auto it = j.find("subject"); it != j.end() && !it->is_null()) {
    PC_ASSIGN_OR_RETURN(Descriptor s, ParseDescriptor(*it, "subject"));
    m.subject = s;
  }
  if (m.IsIndex()) {
    auto ms = j.find("manifests");
    if (ms == j.end() || !ms->is_array()) return Status::ManifestInvalid("index has no manifests array");
    for (const auto& e : *ms) {
      PC_ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor(e, "manifests[]"));
      m.manifests.push_back(std::move(d));
    }
  } else {
    auto cfg = j.find("config");
    if (cfg == j.end()) return Status::ManifestInvalid("image manifest has no config");
    PC_ASSIGN_OR_RETURN(Descriptor c, ParseDescriptor(*cfg, "config"));
    m.config = c;
    auto ls = j.find("layers");
    if (ls != j.end()) {
      if (!ls->is_array()) return Status::ManifestInvalid("image manifest layers is not an array");
      for (const auto& e : *ls) {
        PC_ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor(e, "layers[]"));
        m.layers.push_back(std::move(d));
      }
    }
  }
  return m;
}

}  // namespace portcullis::oci
