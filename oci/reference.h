// Repository names, tags and image references, as the distribution spec and
// Docker define them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "oci/digest.h"
#include "oci/status.h"

namespace portcullis::oci {

// NAME_INVALID unless `name` is path components [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
// joined by '/', at most 255 characters.
Status ValidateRepository(std::string_view name);

// TAG_INVALID unless `tag` matches [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
Status ValidateTag(std::string_view tag);

// A fully qualified image reference: registry "docker.io", repository
// "library/alpine", and a tag and/or a digest.
struct Reference {
  std::string registry;    // host[:port]; "docker.io" for Docker Hub
  std::string repository;  // without the registry
  std::string tag;         // may be empty
  std::optional<Digest> digest;

  // "registry/repository"
  std::string Name() const { return registry + "/" + repository; }
  // The tag or the digest that identifies the manifest ("latest" when neither is set).
  std::string Ref() const;
  // "registry/repository[:tag][@digest]"
  std::string ToString() const;
};

// Parses a reference as docker and skopeo do: a first component with a '.' or
// ':' or equal to "localhost" is a registry, else the registry is docker.io;
// a one-component Docker Hub name gets "library/". `alpine` becomes
// docker.io/library/alpine:latest (the tag "latest" is added only when neither a
// tag nor a digest is given).
StatusOr<Reference> ParseReference(std::string_view s);

}  // namespace portcullis::oci
