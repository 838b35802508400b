// Talking to the registry that holds an image, as the sign / verify / push
// commands do: which URL serves a registry name, where credentials come from,
// and a RegistryClient built from both.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "oci/http_client.h"
#include "oci/status.h"

namespace portcullis::oci {

struct RemoteOptions {
  // Plain http:// instead of https:// (never a silent fallback either way).
  bool allow_http = false;
  // Explicit credentials (--registry-username / --registry-password-file); when
  // unset, the docker config file is consulted (LoadDockerCredentials).
  std::optional<Credentials> credentials;
  // Where the docker config lives; empty: $DOCKER_CONFIG/config.json, else
  // $HOME/.docker/config.json.
  std::string docker_config_path;
  ClientOptions client;
};

// The host[:port] that serves `registry` (as ParseReference spells it):
// "docker.io" is served by registry-1.docker.io; anything else by itself.
std::string RegistryEndpointHost(std::string_view registry);

// Credentials for `registry` from a docker config.json: the "auths" entry whose
// key, with any scheme and path removed, equals the registry (Docker Hub: any of
// docker.io, index.docker.io, registry-1.docker.io, https://index.docker.io/v1/).
// An entry is {"auth": base64("user:pass")} or {"username": ..., "password": ...}.
// nullopt when the file does not exist or has no entry (credential helpers
// "credsStore"/"credHelpers" are not run). Errors name the file: unreadable,
// not JSON, an auth that is not base64 "user:pass".
StatusOr<std::optional<Credentials>> LoadDockerCredentials(std::string_view registry,
                                                                const std::string& config_path = "");

// A registry endpoint: its client and what it was built from (uploads that
// stream a body outside RegistryClient need the same URL and credentials).
struct Remote {
  Url base;
  std::optional<Credentials> credentials;
  ClientOptions client_options;
  std::unique_ptr<RegistryClient> client;
};

// A client for `registry` (scheme by options.allow_http), with the explicit or
// docker-config credentials. Errors: bad registry name, unreadable docker config.
StatusOr<Remote> ConnectRegistry(std::string_view registry, const RemoteOptions& options);

// Token scopes for a repository.
inline std::string PullScope(std::string_view repo) { return "repository:" + std::string(repo) + ":pull"; }
inline std::string PushScope(std::string_view repo) { return "repository:" + std::string(repo) + ":pull,push"; }

}  // namespace portcullis::oci
