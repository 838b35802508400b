// Docker references as containers/image compares them (docker/reference's
// ParseNormalizedNamed): "busybox" is "docker.io/library/busybox",
// "index.docker.io/x/y" is "docker.io/x/y"; and the `signedIdentity` matchers of
// containers-policy.json (signature/policy_reference_match.go).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "oci/digest.h"
#include "oci/status.h"

namespace portcullis::verifier {

// A normalized reference. Unlike oci::ParseReference no ":latest" is added: a
// reference written without tag and digest stays "name only".
struct DockerRef {
  std::string name;  // "docker.io/library/busybox"
  std::string tag;   // "" when absent
  std::optional<oci::Digest> digest;

  bool NameOnly() const { return tag.empty() && !digest; }
  // "name[:tag][@digest]"
  std::string String() const;
};

// Parses and normalizes `s`. Errors (INVALID_ARGUMENT) name the problem.
StatusOr<DockerRef> ParseNormalizedRef(std::string_view s);

// The image being served, as containers/image's "intended" identity: by tag when
// a tag is known (name:tag), else by digest (name@digest). `name` is canonical
// ("<registry>/<repository>"); its first component is taken as the registry even
// without a dot or port (only Docker Hub's names are normalised).
DockerRef IntendedRef(const std::string& name, const std::string& tag, const oci::Digest& digest);

// A containers-policy.json signedIdentity.
struct SignedIdentity {
  enum class Type {
    kMatchRepoDigestOrExact,
    kMatchExact,
    kMatchRepository,
    kExactReference,
    kExactRepository,
    kRemapIdentity
  };
  Type type = Type::kMatchRepoDigestOrExact;
  std::string docker_reference;       // exactReference
  std::string docker_repository;      // exactRepository
  std::string prefix, signed_prefix;  // remapIdentity

  // "matchRepoDigestOrExact", "exactReference docker.io/x:1", ...
  std::string Describe() const;
};

// Validation at load, as containers/image's constructors do it: exactReference
// must parse and carry a tag or digest; exactRepository must parse; remapIdentity
// prefixes must be host[:port] or host[:port]/path without tag or digest.
// INVALID_ARGUMENT naming the field.
Status ValidateSignedIdentity(const SignedIdentity& id);

// Whether a signature claiming `signature_reference` (the payload's
// docker-reference) satisfies `id` for the image `intended`. On false, `why` says
// what did not match.
bool MatchSignedIdentity(const SignedIdentity& id, const DockerRef& intended, std::string_view signature_reference,
                         std::string* why);

// True when `s` is a host[:port] as docker/reference's domain rule has it.
bool IsDomain(std::string_view s);

}  // namespace portcullis::verifier
