#include "proxy/upstreams.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "oci/base64.h"
#include "oci/json_fields.h"
#include "oci/reference.h"

namespace portcullis::proxy {

namespace {

StatusOr<std::string> ReadSecretFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument("cannot read password file " + path);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  return line;
}

std::string HostOfKey(std::string key) {
  for (const char* p : {"https://", "http://"}) {
    if (key.rfind(p, 0) == 0) key = key.substr(std::string(p).size());
  }
  key = key.substr(0, key.find('/'));
  if (key == "index.docker.io" || key == "registry-1.docker.io") key = "docker.io";
  return key;
}

}  // namespace

StatusOr<std::map<std::string, oci::Credentials>> ReadDockerConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument("cannot read docker config " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument(path + ": not a JSON object");
  std::map<std::string, oci::Credentials> out;
  auto auths = j.find("auths");
  if (auths == j.end()) return out;
  if (!auths->is_object()) return Status::InvalidArgument(path + ": auths must be an object");
  for (auto& [key, v] : auths->items()) {
    if (!v.is_object()) continue;
    oci::Credentials c;
    if (auto a = v.find("auth"); a != v.end() && a->is_string()) {
      auto dec = oci::Base64Decode(a->get<std::string>());
      if (!dec) return Status::InvalidArgument(path + ": auths." + key + ".auth is not base64");
      auto colon = dec->find(':');
      if (colon == std::string::npos) return Status::InvalidArgument(path + ": auths." + key + ".auth is not user:password");
      c.username = dec->substr(0, colon);
      c.password = dec->substr(colon + 1);
    } else if (oci::FieldPresent(v, "username") && oci::FieldPresent(v, "password")) {
      auto user = oci::StringField(v, "username"), pass = oci::StringField(v, "password");
      if (!user || !pass) return Status::InvalidArgument(path + ": auths." + key + ".username and .password must be strings");
      c.username = *user;
      c.password = *pass;
    } else {
      continue;
    }
    out[HostOfKey(key)] = c;
  }
  return out;
}

StatusOr<std::unique_ptr<Router>> Router::Create(const config::Config& cfg) {
  auto r = std::make_unique<Router>();
  std::map<std::string, oci::Credentials> docker_auths;
  if (!cfg.docker_config.empty()) {
    PC_ASSIGN_OR_RETURN(docker_auths, ReadDockerConfig(cfg.docker_config));
  }
  for (const auto& u : cfg.upstreams) {
    PC_ASSIGN_OR_RETURN(oci::Url url, oci::ParseUrl(u.url));
    std::optional<oci::Credentials> creds;
    if (!u.username.empty()) {
      oci::Credentials c;
      c.username = u.username;
      if (!u.password_file.empty()) {
        PC_ASSIGN_OR_RETURN(c.password, ReadSecretFile(u.password_file));
      }
      creds = c;
    } else if (auto it = docker_auths.find(u.name); it != docker_auths.end()) {
      creds = it->second;
    } else if (auto it2 = docker_auths.find(url.host + (url.port == 443 || url.port == 80 ? "" : ":" + std::to_string(url.port)));
               it2 != docker_auths.end()) {
      creds = it2->second;
    }
    oci::ClientOptions opts;
    opts.ca_file = u.ca_file;
    opts.read_timeout = std::chrono::seconds(cfg.upstream_timeout_seconds);
    opts.connect_timeout = std::chrono::seconds(std::min<int64_t>(cfg.upstream_timeout_seconds, 10));
    auto up = std::make_unique<Upstream>();
    up->name = u.name;
    up->client = std::make_shared<oci::RegistryClient>(url, creds, opts);
    if (u.name == cfg.default_upstream) r->default_ = up.get();
    r->upstreams_.push_back(std::move(up));
  }
  if (r->default_ == nullptr && !r->upstreams_.empty()) r->default_ = r->upstreams_.front().get();
  return r;
}

const Upstream* Router::Find(const std::string& name) const {
  for (const auto& u : upstreams_) {
    if (u->name == name) return u.get();
  }
  return nullptr;
}

StatusOr<Route> Router::Resolve(const std::string& name, const std::string& ns) const {
  Route route;
  std::string repo = name;
  if (!ns.empty()) {
    std::string host = ns;
    if (host == "index.docker.io" || host == "registry-1.docker.io") host = "docker.io";
    route.upstream = Find(host);
    if (route.upstream == nullptr) {
      return Status::NameUnknown("no upstream is configured for registry \"" + ns.substr(0, 200) +
                                 "\" (ns= query); configure it with --upstream " + ns.substr(0, 200) + "=URL");
    }
  } else {
    auto slash = name.find('/');
    if (slash != std::string::npos) {
      if (const Upstream* u = Find(name.substr(0, slash))) {
        route.upstream = u;
        repo = name.substr(slash + 1);
      }
    }
    if (route.upstream == nullptr) route.upstream = default_;
  }
  PC_RETURN_IF_ERROR(oci::ValidateRepository(repo));
  // Docker Hub keeps official images under library/; a bare name means that.
  if (route.upstream->name == "docker.io" && repo.find('/') == std::string::npos) repo = "library/" + repo;
  route.repo = repo;
  return route;
}

}  // namespace portcullis::proxy
