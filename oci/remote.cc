#include "oci/remote.h"

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "oci/base64.h"
#include "oci/json_fields.h"

namespace portcullis::oci {

namespace {

bool IsDockerHub(std::string_view host) {
  return host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io";
}

// "https://index.docker.io/v1/" → "index.docker.io"; "127.0.0.1:5000" unchanged.
std::string AuthKeyHost(std::string_view key) {
  if (auto p = key.find("://"); p != std::string_view::npos) key = key.substr(p + 3);
  if (auto p = key.find('/'); p != std::string_view::npos) key = key.substr(0, p);
  return std::string(key);
}

std::string DefaultDockerConfigPath() {
  if (const char* dir = std::getenv("DOCKER_CONFIG"); dir != nullptr && *dir != '\0') {
    return std::string(dir) + "/config.json";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return std::string(home) + "/.docker/config.json";
  }
  return "";
}

}  // namespace

std::string RegistryEndpointHost(std::string_view registry) {
  if (IsDockerHub(registry)) return "registry-1.docker.io";
  return std::string(registry);
}

StatusOr<std::optional<Credentials>> LoadDockerCredentials(std::string_view registry,
                                                                const std::string& config_path) {
  std::string path = config_path.empty() ? DefaultDockerConfigPath() : config_path;
  if (path.empty()) return std::optional<Credentials>();
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::optional<Credentials>();  // no config: anonymous
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::IoError(path + ": cannot read the docker config");
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument(path + ": docker config is not a JSON object");
  auto auths = j.find("auths");
  if (auths == j.end() || !auths->is_object()) return std::optional<Credentials>();
  const bool hub = IsDockerHub(registry);
  for (const auto& [key, entry] : auths->items()) {
    std::string host = AuthKeyHost(key);
    if (!(host == registry || (hub && IsDockerHub(host)))) continue;
    if (!entry.is_object()) continue;
    if (auto a = entry.find("auth"); a != entry.end() && a->is_string() && !a->get<std::string>().empty()) {
      auto decoded = Base64Decode(a->get<std::string>());
      size_t colon = decoded ? decoded->find(':') : std::string::npos;
      if (!decoded || colon == std::string::npos) {
        return Status::InvalidArgument(path + ": auths[\"" + key + "\"].auth is not base64 of \"user:password\"");
      }
      return std::optional<Credentials>(Credentials{decoded->substr(0, colon), decoded->substr(colon + 1)});
    }
    std::string user = StringField(entry, "username").value_or("");
    std::string pass = StringField(entry, "password").value_or("");
    if (!user.empty()) return std::optional<Credentials>(Credentials{user, pass});
  }
  return std::optional<Credentials>();
}

StatusOr<Remote> ConnectRegistry(std::string_view registry, const RemoteOptions& options) {
  std::string scheme = options.allow_http ? "http://" : "https://";
  PC_ASSIGN_OR_RETURN(Url url, ParseUrl(scheme + RegistryEndpointHost(registry)));
  if (!url.path.empty()) return Status::InvalidArgument("registry \"" + std::string(registry) + "\" has a path");
  std::optional<Credentials> creds = options.credentials;
  if (!creds) {
    PC_ASSIGN_OR_RETURN(creds, LoadDockerCredentials(registry, options.docker_config_path));
  }
  Remote r;
  r.base = url;
  r.credentials = creds;
  r.client_options = options.client;
  r.client = std::make_unique<RegistryClient>(url, creds, options.client);
  return r;
}

}  // namespace portcullis::oci
