#include "verifier/identity.h"

#include "oci/reference.h"

namespace portcullis::verifier {

namespace {

bool Alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// [a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
bool DomainComponent(std::string_view c) {
  if (c.empty() || !Alnum(c.front()) || !Alnum(c.back())) return false;
  for (char ch : c) {
    if (!Alnum(ch) && ch != '-') return false;
  }
  return true;
}

const char* TypeName(SignedIdentity::Type t) {
  switch (t) {
    case SignedIdentity::Type::kMatchRepoDigestOrExact:
      return "matchRepoDigestOrExact";
    case SignedIdentity::Type::kMatchExact:
      return "matchExact";
    case SignedIdentity::Type::kMatchRepository:
      return "matchRepository";
    case SignedIdentity::Type::kExactReference:
      return "exactReference";
    case SignedIdentity::Type::kExactRepository:
      return "exactRepository";
    case SignedIdentity::Type::kRemapIdentity:
      return "remapIdentity";
  }
  return "?";
}

bool ValidRemapPrefix(std::string_view s) {
  if (IsDomain(s)) return true;
  size_t slash = s.find('/');
  if (slash == std::string_view::npos || !IsDomain(s.substr(0, slash))) return false;
  return oci::ValidateRepository(s.substr(slash + 1)).ok();
}

// containers/image's matchRepoDigestOrExactReferenceValues.
bool RepoDigestOrExact(const DockerRef& intended, const DockerRef& sig, const std::string& rule, std::string* why) {
  if (sig.NameOnly()) {
    *why = "identity " + sig.String() + " names a repository only, and signedIdentity " + rule +
           " needs a tag or digest in it (cosign signs repositories only: use {\"type\":\"matchRepository\"})";
    return false;
  }
  bool ok = !intended.tag.empty() ? sig.String() == intended.String() : sig.name == intended.name;
  if (!ok) *why = "identity " + sig.String() + " does not match " + intended.String() + " (" + rule + ")";
  return ok;
}

}  // namespace

bool IsDomain(std::string_view s) {
  if (size_t colon = s.rfind(':'); colon != std::string_view::npos) {
    std::string_view port = s.substr(colon + 1);
    if (port.empty()) return false;
    for (char c : port) {
      if (c < '0' || c > '9') return false;
    }
    s = s.substr(0, colon);
  }
  if (s.empty()) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    if (!DomainComponent(s.substr(start, dot == std::string_view::npos ? dot : dot - start))) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

std::string DockerRef::String() const {
  std::string s = name;
  if (!tag.empty()) s += ":" + tag;
  if (digest) s += "@" + digest->ToString();
  return s;
}

StatusOr<DockerRef> ParseNormalizedRef(std::string_view s) {
  if (s.empty()) return Status::InvalidArgument("empty docker reference");
  std::string_view before = s.substr(0, s.find('@'));
  size_t last_slash = before.rfind('/');
  size_t colon = before.rfind(':');
  const bool explicit_tag =
      colon != std::string_view::npos && (last_slash == std::string_view::npos || colon > last_slash);
  auto ref = oci::ParseReference(s);
  if (!ref.ok()) return Status::InvalidArgument("\"" + std::string(s.substr(0, 300)) + "\": " + ref.status().message());
  DockerRef out;
  out.name = ref->Name();
  out.tag = explicit_tag ? ref->tag : "";
  out.digest = ref->digest;
  return out;
}

DockerRef IntendedRef(const std::string& name, const std::string& tag, const oci::Digest& digest) {
  DockerRef r;
  // `name` is canonical: its first component IS the registry, also when it has
  // no dot (a proxy upstream named "internal"). Docker's normalisation would
  // read such a name as a Docker Hub namespace, so that docker.io scopes would
  // govern another registry's images (review M3): only Docker Hub's own names
  // are normalised (docker.io/alpine -> docker.io/library/alpine).
  const std::string host = name.substr(0, name.find('/'));
  r.name = name;
  if (host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io") {
    auto n = ParseNormalizedRef(name);
    if (n.ok() && n->NameOnly()) r.name = n->name;
  }
  if (!tag.empty()) {
    r.tag = tag;
  } else {
    r.digest = digest;
  }
  return r;
}

std::string SignedIdentity::Describe() const {
  std::string s = TypeName(type);
  switch (type) {
    case Type::kExactReference:
      return s + " " + docker_reference;
    case Type::kExactRepository:
      return s + " " + docker_repository;
    case Type::kRemapIdentity:
      return s + " " + prefix + " -> " + signed_prefix;
    default:
      return s;
  }
}

Status ValidateSignedIdentity(const SignedIdentity& id) {
  switch (id.type) {
    case SignedIdentity::Type::kExactReference: {
      auto r = ParseNormalizedRef(id.docker_reference);
      if (!r.ok()) return Status::InvalidArgument("dockerReference: " + r.status().message());
      if (r->NameOnly()) {
        return Status::InvalidArgument("dockerReference \"" + id.docker_reference +
                                       "\" contains neither a tag nor a digest");
      }
      return Status::Ok();
    }
    case SignedIdentity::Type::kExactRepository: {
      auto r = ParseNormalizedRef(id.docker_repository);
      if (!r.ok()) return Status::InvalidArgument("dockerRepository: " + r.status().message());
      return Status::Ok();
    }
    case SignedIdentity::Type::kRemapIdentity:
      if (!ValidRemapPrefix(id.prefix)) return Status::InvalidArgument("prefix \"" + id.prefix + "\" is not valid");
      if (!ValidRemapPrefix(id.signed_prefix)) {
        return Status::InvalidArgument("signedPrefix \"" + id.signed_prefix + "\" is not valid");
      }
      return Status::Ok();
    default:
      return Status::Ok();
  }
}

bool MatchSignedIdentity(const SignedIdentity& id, const DockerRef& intended, std::string_view signature_reference,
                         std::string* why) {
  std::string scratch;
  if (why == nullptr) why = &scratch;
  auto parsed = ParseNormalizedRef(signature_reference);
  if (!parsed.ok()) {
    *why = "identity is not a valid docker reference: " + parsed.status().message();
    return false;
  }
  const DockerRef& sig = *parsed;
  const std::string rule = TypeName(id.type);
  switch (id.type) {
    case SignedIdentity::Type::kMatchExact:
      if (sig.NameOnly()) {
        *why = "identity " + sig.String() + " names a repository only, and signedIdentity matchExact needs " +
               intended.String();
        return false;
      }
      if (sig.String() != intended.String()) {
        *why = "identity " + sig.String() + " does not match " + intended.String() + " (matchExact)";
        return false;
      }
      return true;
    case SignedIdentity::Type::kMatchRepoDigestOrExact:
      return RepoDigestOrExact(intended, sig, rule, why);
    case SignedIdentity::Type::kMatchRepository:
      if (sig.name != intended.name) {
        *why = "identity " + sig.name + " does not match " + intended.name + " (matchRepository)";
        return false;
      }
      return true;
    case SignedIdentity::Type::kExactReference: {
      auto want = ParseNormalizedRef(id.docker_reference);
      if (!want.ok() || sig.NameOnly() || sig.String() != want->String()) {
        *why = "identity " + sig.String() + " does not match " + id.docker_reference + " (exactReference)";
        return false;
      }
      return true;
    }
    case SignedIdentity::Type::kExactRepository: {
      auto want = ParseNormalizedRef(id.docker_repository);
      if (!want.ok() || sig.name != want->name) {
        *why = "identity " + sig.name + " does not match " + (want.ok() ? want->name : id.docker_repository) +
               " (exactRepository)";
        return false;
      }
      return true;
    }
    case SignedIdentity::Type::kRemapIdentity: {
      DockerRef remapped = intended;
      if (intended.name == id.prefix) {
        remapped.name = id.signed_prefix;
      } else if (intended.name.size() > id.prefix.size() && intended.name.starts_with(id.prefix) &&
                 intended.name[id.prefix.size()] == '/') {
        remapped.name = id.signed_prefix + intended.name.substr(id.prefix.size());
      }
      return RepoDigestOrExact(remapped, sig, "remapIdentity", why);
    }
  }
  *why = "unknown signedIdentity";
  return false;
}

}  // namespace portcullis::verifier
