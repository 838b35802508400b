#include "signer/payload.h"

#include "oci/reference.h"
#include "signer/go_json.h"

namespace portcullis::signer {

StatusOr<std::string> DockerReference(std::string_view image) {
  // Validate the whole reference the way every other command parses it.
  PC_RETURN_IF_ERROR(oci::ParseReference(image).status());
  std::string_view rest = image;
  if (auto at = rest.find('@'); at != std::string_view::npos) rest = rest.substr(0, at);
  size_t last_slash = rest.rfind('/');
  if (size_t colon = rest.rfind(':');
      colon != std::string_view::npos && (last_slash == std::string_view::npos || colon > last_slash)) {
    rest = rest.substr(0, colon);
  }
  std::string registry, repo;
  size_t slash = rest.find('/');
  std::string_view first = rest.substr(0, slash);
  if (slash != std::string_view::npos && (first.find('.') != std::string_view::npos ||
                                          first.find(':') != std::string_view::npos || first == "localhost")) {
    registry = std::string(first);
    repo = std::string(rest.substr(slash + 1));
  } else {
    registry = "index.docker.io";
    repo = std::string(rest);
  }
  if (registry == "docker.io") registry = "index.docker.io";
  if (registry == "index.docker.io" && repo.find('/') == std::string::npos) repo = "library/" + repo;
  if (repo.empty()) return Status::NameInvalid("image \"" + std::string(image) + "\" has no repository");
  return registry + "/" + repo;
}

std::string BuildPayload(std::string_view docker_reference, const oci::Digest& digest,
                         const std::map<std::string, std::string>& annotations) {
  std::string out = "{\"critical\":{\"identity\":{\"docker-reference\":";
  AppendGoString(out, docker_reference);
  out += "},\"image\":{\"docker-manifest-digest\":";
  AppendGoString(out, digest.ToString());
  out += "},\"type\":\"cosign container image signature\"},\"optional\":";
  if (annotations.empty()) {
    out += "null";
  } else {
    AppendGoStringMap(out, annotations);
  }
  out += "}";
  return out;
}

StatusOr<std::map<std::string, std::string>> ParseAnnotations(const std::vector<std::string>& args) {
  std::map<std::string, std::string> out;
  for (const std::string& a : args) {
    size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status::InvalidArgument("annotation \"" + a + "\" is not key=value");
    }
    out[a.substr(0, eq)] = a.substr(eq + 1);
  }
  return out;
}

}  // namespace portcullis::signer
