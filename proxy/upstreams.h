// Upstream routing: which upstream registry, and which repository there, a
// client request means.
//   ?ns=HOST                  → the upstream named HOST (containerd hosts.toml)
//   /v2/NAME/<repo>/...       → the upstream NAME, prefix stripped (registries.conf mirror)
//   anything else             → the default upstream (dockerd registry-mirrors)
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "oci/http_client.h"
#include "oci/status.h"

namespace portcullis::proxy {

struct Upstream {
  std::string name;
  std::shared_ptr<oci::RegistryClient> client;
};

class Router;

struct Route {
  const Upstream* upstream = nullptr;
  // Keeps the router that `upstream` belongs to alive across a reload.
  std::shared_ptr<const Router> keep;
  std::string repo;  // repository at the upstream, validated

  // "<upstream>/<repo>", the key links and tags are stored under.
  std::string Key() const { return upstream->name + "/" + repo; }
};

class Router {
 public:
  // Builds one client per upstream, reading credentials from password files and
  // the docker config.json. INVALID_ARGUMENT names an unreadable file.
  static StatusOr<std::unique_ptr<Router>> Create(const config::Config& cfg);

  // Resolves `name` (the path between /v2/ and /manifests etc.) and the `ns`
  // query value (may be empty). NAME_UNKNOWN for an unknown ns; NAME_INVALID
  // for a malformed repository.
  StatusOr<Route> Resolve(const std::string& name, const std::string& ns) const;

  const Upstream* Find(const std::string& name) const;
  const std::vector<std::unique_ptr<Upstream>>& upstreams() const { return upstreams_; }

 private:
  std::vector<std::unique_ptr<Upstream>> upstreams_;
  const Upstream* default_ = nullptr;
};

// Reads "auths" of a docker config.json: registry host → {user, password}.
// Docker Hub's "https://index.docker.io/v1/" key is returned as "docker.io".
StatusOr<std::map<std::string, oci::Credentials>> ReadDockerConfig(const std::string& path);

}  // namespace portcullis::proxy
