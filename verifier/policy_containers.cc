// containers-policy.json (containers/image docs/containers-policy.json.5.md),
// for the docker transport, with sigstore keys. See verifier/policy.md.
#include <algorithm>
#include <map>
#include <optional>
#include <sstream>

#include "oci/reference.h"
#include "verifier/containers_bundle.h"
#include "verifier/policy_containers_internal.h"
#include "verifier/signature_check.h"

namespace portcullis::verifier::internal {

namespace {

using nlohmann::json;

std::string ScopeLabel(const std::string* scope) {
  return scope == nullptr ? "default" : "transports.docker[" + Quote(*scope) + "]";
}

// Why a docker scope can never match a canonical image name ("" when it can).
std::string ScopeProblem(const std::string& scope) {
  if (scope.empty()) return "";
  if (scope.starts_with("*.")) {
    return IsDomain(scope.substr(2)) && scope.find(':') == std::string::npos
               ? ""
               : "a wildcard scope is *.DOMAIN (no port, no path)";
  }
  std::string rest = scope;
  std::string host = rest.substr(0, rest.find('/'));
  if (!IsDomain(host)) return "\"" + host + "\" is not a host[:port]";
  if (host == "index.docker.io" || host == "registry-1.docker.io") return "Docker Hub images are named docker.io/...";
  if (rest.size() == host.size()) {
    if (host.find('.') == std::string::npos && host.find(':') == std::string::npos && host != "localhost") {
      return "a scope starts with a registry host (Docker Hub: docker.io/library/...)";
    }
    return "";
  }
  std::string path = rest.substr(host.size() + 1);
  if (size_t at = path.find('@'); at != std::string::npos) {
    if (!oci::Digest::Parse(path.substr(at + 1)).ok()) return "malformed digest";
    path.resize(at);
  } else if (size_t colon = path.rfind(':'); colon != std::string::npos) {
    if (!oci::ValidateTag(path.substr(colon + 1)).ok()) return "malformed tag";
    path.resize(colon);
  }
  if (!oci::ValidateRepository(path).ok()) return "\"" + path + "\" is not a repository path";
  if (host.find('.') == std::string::npos && host.find(':') == std::string::npos && host != "localhost") {
    return "a scope starts with a registry host (Docker Hub: docker.io/library/...)";
  }
  if (host == "docker.io" && path.find('/') == std::string::npos && scope.find_first_of(":@") == std::string::npos) {
    return "Docker Hub official images are docker.io/library/" + path;
  }
  return "";
}

std::string FulcioLabel(const FulcioTrust& f) { return "fulcio " + f.subject_email + " (" + f.oidc_issuer + ")"; }

void AddMatched(Decision& d, const std::string& label) {
  if (std::find(d.keys_matched.begin(), d.keys_matched.end(), label) == d.keys_matched.end()) {
    d.keys_matched.push_back(label);
  }
}

// A Sigstore bundle signs the image digest only: cosign v3's in-toto statement
// names no repository (`"subject":[{"digest":…}]`, `"predicate":{}`), and a
// message signature signs the manifest bytes. It is read as a signature of
// <repository it was found in>@<digest>, which satisfies the identities that
// ask for the repository being pulled; the ones that name what must have been
// signed cannot be checked on it (see verifier/policy.md).
bool BundleIdentityOk(const SignedIdentity& id, std::string* why) {
  if (id.type == SignedIdentity::Type::kMatchRepoDigestOrExact || id.type == SignedIdentity::Type::kMatchRepository) {
    return true;
  }
  *why = "a Sigstore bundle signs the digest only, no docker-reference: signedIdentity " + id.Describe() +
         " cannot hold for it (bundles count under matchRepoDigestOrExact and matchRepository)";
  return false;
}

// One bundle under a sigstoreSigned requirement (containers_bundle.h); true when accepted.
template <typename Note>
bool CheckBundleSig(const Requirement& r, const oci::Digest& digest, const FoundSignature& sig, Decision& d,
                    std::vector<std::string>& outcome, Note& note) {
  auto one = [&](const std::string& who, const BundleCheck& c) {
    if (c.kind == BundleCheck::Kind::kVerified) {
      std::string why;
      if (!BundleIdentityOk(r.identity, &why)) {
        note(why);
        outcome.push_back("signed by " + who + " but " + why);
        return false;
      }
      outcome.push_back("verified: " + who);
      AddMatched(d, who);
      return true;
    }
    if (c.kind == BundleCheck::Kind::kRefused) {
      note("bundle not verified for " + who + ": " + c.detail);
      outcome.push_back("not verified for " + who + ": " + c.detail);
    } else {
      outcome.push_back((c.kind == BundleCheck::Kind::kUnreadable ? "unusable: " : "not for " + who + ": ") +
                        c.detail);
    }
    return false;
  };
  // Rekor v2 bundles (no SET) are checked against the built-in trusted root's
  // Rekor v2 logs and TSAs (containers_bundle.h); static, so the pointer stays valid.
  const sigstore::TrustedRoot* v2_root = r.rekor_keys.empty() ? nullptr : ContainersRekorV2Root().get();
  if (r.fulcio) {
    return one(FulcioLabel(*r.fulcio), CheckContainersFulcioBundle(sig, digest, *r.fulcio, r.rekor_keys, v2_root));
  }
  for (const TrustedKey& k : r.keys) {
    BundleCheck c = CheckContainersKeyBundle(sig, digest, k.der, r.rekor_keys, v2_root);
    if (c.kind == BundleCheck::Kind::kUnreadable || c.kind == BundleCheck::Kind::kOtherMode) return one(k.name, c);
    if (c.kind == BundleCheck::Kind::kRefused && c.detail.find("does not verify") != std::string::npos) {
      continue;  // another key's bundle: not this key's refusal
    }
    if (one(k.name, c)) return true;
  }
  return false;
}

// One found signature under a "fulcio" requirement (legacy_keyless.h); true when accepted.
template <typename Note>
bool CheckFulcio(const Requirement& r, const DockerRef& intended, const oci::Digest& digest, const FoundSignature& sig,
                 Decision& d, std::vector<std::string>& outcome, Note& note) {
  auto key = VerifyFulcioLayer(sig, *r.fulcio, r.rekor_keys);
  if (!key.ok()) {
    note(key.status().message());
    outcome.push_back("not accepted: " + key.status().message());
    return false;
  }
  SignatureCheck c = CheckSignature(sig, *key, digest);
  if (c.kind != SignatureCheck::Kind::kVerified) {
    std::string why = c.kind == SignatureCheck::Kind::kOtherKey ? "the signature does not verify with the "
                                                                  "certificate's key"
                                                                : c.detail;
    note(why);
    outcome.push_back("certificate accepted but " + why);
    return false;
  }
  std::string id_why;
  if (!MatchSignedIdentity(r.identity, intended, c.payload.docker_reference, &id_why)) {
    note(id_why);
    outcome.push_back("certificate accepted but " + id_why);
    return false;
  }
  const std::string label = FulcioLabel(*r.fulcio);
  outcome.push_back("verified: " + label);
  if (std::find(d.keys_matched.begin(), d.keys_matched.end(), label) == d.keys_matched.end()) {
    d.keys_matched.push_back(label);
  }
  return true;
}

class ContainersPolicy : public Policy {
 public:
  ContainersPolicy(std::string origin, std::string version, Requirements def,
                   std::map<std::string, Requirements> docker, std::vector<std::string> ignored)
      : Policy(std::move(origin), std::move(version)),
        default_(std::move(def)),
        docker_(std::move(docker)),
        ignored_transports_(std::move(ignored)) {}

  std::string format() const override { return "containers-policy"; }

  std::string MatchedRule(const std::string& name, const std::string& tag, const oci::Digest& digest) const override {
    return ScopeLabel(Lookup(IntendedRef(name, tag, digest)).first);
  }

  bool NeedsSignatures(const std::string& name, const std::string& tag, const oci::Digest& digest) const override {
    const Requirements& reqs = *Lookup(IntendedRef(name, tag, digest)).second;
    bool sigstore = false;
    for (const Requirement& r : reqs) {
      if (r.type == Requirement::Type::kReject) return false;
      sigstore = sigstore || r.type == Requirement::Type::kSigstoreSigned;
    }
    return sigstore;
  }

  bool DecisionDependsOnTag() const override { return true; }

  bool AcceptsEverything() const override {
    auto anything = [](const Requirements& reqs) {
      for (const Requirement& r : reqs) {
        if (r.type != Requirement::Type::kInsecureAcceptAnything) return false;
      }
      return true;
    };
    if (!anything(default_)) return false;
    for (const auto& [scope, reqs] : docker_) {
      if (!anything(reqs)) return false;
    }
    return true;
  }

  StatusOr<Decision> Evaluate(const std::string& name, const std::string& tag, const oci::Digest& digest,
                              SignatureSource& sigs) const override;
  std::string Explain() const override;

 private:
  // The matching scope (nullptr: default) and its requirements.
  std::pair<const std::string*, const Requirements*> Lookup(const DockerRef& intended) const;
  bool CheckSigstore(const Requirement& r, const DockerRef& intended, const oci::Digest& digest,
                     const std::vector<FoundSignature>& found, Decision& d, std::string* why) const;

  Requirements default_;
  std::map<std::string, Requirements> docker_;
  std::vector<std::string> ignored_transports_;
};

std::pair<const std::string*, const Requirements*> ContainersPolicy::Lookup(const DockerRef& intended) const {
  // containers/image: the full reference, the repository, its namespaces up to
  // the host, then *.domain wildcards of the host (port stripped), then "".
  std::vector<std::string> candidates = {intended.String()};
  std::string n = intended.name;
  while (true) {
    candidates.push_back(n);
    size_t slash = n.rfind('/');
    if (slash == std::string::npos) break;
    n.resize(slash);
  }
  if (size_t colon = n.find(':'); colon != std::string::npos) n.resize(colon);
  while (true) {
    size_t dot = n.find('.');
    if (dot == std::string::npos) break;
    n = n.substr(dot + 1);
    candidates.push_back("*." + n);
  }
  candidates.push_back("");
  for (const std::string& c : candidates) {
    if (auto it = docker_.find(c); it != docker_.end()) return {&it->first, &it->second};
  }
  return {nullptr, &default_};
}

bool ContainersPolicy::CheckSigstore(const Requirement& r, const DockerRef& intended, const oci::Digest& digest,
                                     const std::vector<FoundSignature>& found, Decision& d, std::string* why) const {
  std::vector<std::string> notes;
  auto note = [&](const std::string& s) {
    if (std::find(notes.begin(), notes.end(), s) == notes.end()) notes.push_back(s);
  };
  bool accepted = false;
  for (const FoundSignature& sig : found) {
    std::vector<std::string> outcome;
    if (sig.bundle) {
      accepted = CheckBundleSig(r, digest, sig, d, outcome, note) || accepted;
      if (outcome.empty()) outcome.push_back("no trusted key of this requirement verifies it");
      d.details.push_back(SignatureLabel(sig) + ": " + JoinList(outcome, "; "));
      continue;
    }
    if (r.fulcio) {
      accepted = CheckFulcio(r, intended, digest, sig, d, outcome, note) || accepted;
      d.details.push_back(SignatureLabel(sig) + ": " + JoinList(outcome, "; "));
      continue;
    }
    for (const TrustedKey& k : r.keys) {
      SignatureCheck c = CheckSignature(sig, *k.key, digest);
      if (c.kind == SignatureCheck::Kind::kUnreadable) {
        outcome.push_back("unusable: " + c.detail);
        break;
      }
      if (c.kind == SignatureCheck::Kind::kOtherKey) continue;
      if (c.kind == SignatureCheck::Kind::kBadPayload) {
        note("signature by " + k.name + " has an invalid payload: " + c.detail);
        outcome.push_back("signed by " + k.name + " but " + c.detail);
        continue;
      }
      if (c.kind == SignatureCheck::Kind::kWrongDigest) {
        note(c.detail);
        outcome.push_back("signed by " + k.name + " but " + c.detail);
        continue;
      }
      std::string id_why;
      if (!MatchSignedIdentity(r.identity, intended, c.payload.docker_reference, &id_why)) {
        note(id_why);
        outcome.push_back("signed by " + k.name + " but " + id_why);
        continue;
      }
      if (!r.rekor_keys.empty()) {
        if (Status st = VerifyKeyLayerSet(sig, k.der, r.rekor_keys); !st.ok()) {
          note("signature by " + k.name + ": " + st.message());
          outcome.push_back("signed by " + k.name + " but " + st.message());
          continue;
        }
      }
      accepted = true;
      outcome.push_back("verified by " + k.name);
      if (std::find(d.keys_matched.begin(), d.keys_matched.end(), k.name) == d.keys_matched.end()) {
        d.keys_matched.push_back(k.name);
      }
      break;
    }
    if (outcome.empty()) outcome.push_back("no trusted key of this requirement verifies it");
    d.details.push_back(SignatureLabel(sig) + ": " + JoinList(outcome, "; "));
  }
  if (accepted) return true;
  if (notes.size() > 3) notes.resize(3);
  std::vector<std::string> names;
  for (const TrustedKey& k : r.keys) names.push_back(k.name);
  if (r.fulcio) names.push_back(FulcioLabel(*r.fulcio));
  if (!notes.empty()) {
    *why = JoinList(notes, "; ");
  } else if (found.empty()) {
    *why = "no signature by a trusted key (no signatures found for " + digest.ToString() + ")";
  } else {
    *why = std::string(r.fulcio ? "no signature by a trusted signer (" : "no signature by a trusted key (") +
           std::to_string(found.size()) +
           (found.size() == 1 ? " signature" : " signatures") + " found, none by " + JoinList(names) + ")";
  }
  return false;
}

StatusOr<Decision> ContainersPolicy::Evaluate(const std::string& name, const std::string& tag,
                                              const oci::Digest& digest, SignatureSource& sigs) const {
  if (name.empty()) return Status::InvalidArgument("policy evaluation needs an image name");
  const DockerRef intended = IntendedRef(name, tag, digest);
  auto [scope, reqs] = Lookup(intended);
  Decision d;
  d.rule = ScopeLabel(scope);
  for (const Requirement& r : *reqs) {
    if (r.type == Requirement::Type::kReject) {
      d.reason = "rejected by " + d.rule + " (reject)";
      return d;
    }
  }
  std::optional<std::vector<FoundSignature>> found;
  for (const Requirement& r : *reqs) {
    if (r.type != Requirement::Type::kSigstoreSigned) continue;
    if (!found) {
      auto f = sigs.Find(digest);
      if (!f.ok()) {
        // A lookup past its bounds is a refusal, not an outage (review M5).
        if (!f.status().Is(Code::kLimitExceeded)) return f.status();
        d.reason = f.status().message();
        return d;
      }
      found = std::move(*f);
      d.signatures_found = found->size();
    }
    std::string why;
    if (!CheckSigstore(r, intended, digest, *found, d, &why)) {
      d.keys_matched.clear();
      d.reason = why;
      return d;
    }
  }
  d.allowed = true;
  d.reason = found ? "accepted by " + d.rule + ": signed by " + JoinList(d.keys_matched)
                   : "accepted by " + d.rule + " (insecureAcceptAnything)";
  return d;
}

std::string Describe(const Requirements& reqs) {
  std::vector<std::string> parts;
  for (const Requirement& r : reqs) {
    switch (r.type) {
      case Requirement::Type::kInsecureAcceptAnything:
        parts.push_back("insecureAcceptAnything");
        break;
      case Requirement::Type::kReject:
        parts.push_back("reject");
        break;
      case Requirement::Type::kSigstoreSigned: {
        const std::string rekor =
            r.rekor_keys.empty()
                ? ""
                : ", with a Rekor SET by one of " + std::to_string(r.rekor_keys.size()) + " Rekor key(s)";
        if (r.fulcio) {
          parts.push_back("sigstoreSigned by " + FulcioLabel(*r.fulcio) + " certificates chaining to " +
                          std::to_string(r.fulcio->cas.size()) + " CA certificate(s)" + rekor + ", signedIdentity " +
                          r.identity.Describe());
          break;
        }
        std::vector<std::string> keys;
        for (const TrustedKey& k : r.keys) {
          keys.push_back(k.name + " (" + std::string(keys::KeyTypeName(k.key->type())) + ")");
        }
        parts.push_back("sigstoreSigned by any of [" + JoinList(keys) + "]" + rekor + ", signedIdentity " +
                        r.identity.Describe());
        break;
      }
    }
  }
  return JoinList(parts, " AND ");
}

std::string ContainersPolicy::Explain() const {
  std::ostringstream o;
  o << "format: containers-policy (containers-policy.json, docker transport)\nversion: " << version() << "\n";
  o << "scopes (the most specific matching scope alone applies: name:tag or name@digest, the repository, its "
       "namespaces, the host, *.domain wildcards, \"\", then default):\n";
  for (const auto& [scope, reqs] : docker_) {
    o << "  " << ScopeLabel(&scope) << ": " << Describe(reqs) << "\n";
    if (std::string p = ScopeProblem(scope); !p.empty()) {
      o << "      warning: this scope never matches a canonical image name: " << p << "\n";
    }
  }
  o << "  default: " << Describe(default_) << "\n";
  for (const std::string& t : ignored_transports_) {
    o << "note: transports." << t << " is ignored (Portcullis serves registry images: transport docker)\n";
  }
  return o.str();
}

}  // namespace

StatusOr<std::shared_ptr<const Policy>> ParseContainersPolicy(const json& j, const std::string& text,
                                                              const std::string& origin, const std::string& base_dir) {
  std::vector<std::string> version_parts = {text};
  Ctx c{origin, base_dir, version_parts};
  for (const auto& [k, v] : j.items()) {
    if (k != "default" && k != "transports") {
      return Status::InvalidArgument(origin + ": unknown field " + Quote(k) +
                                     " (a containers-policy.json has \"default\" and \"transports\")");
    }
  }
  auto d = j.find("default");
  if (d == j.end())
    return Status::InvalidArgument(origin + ": default: missing (the global default policy is required)");
  PC_ASSIGN_OR_RETURN(Requirements def, ParseList(c, "default", *d));
  std::map<std::string, Requirements> docker;
  std::vector<std::string> ignored;
  if (auto t = j.find("transports"); t != j.end()) {
    if (!t->is_object()) return FieldError(c, "transports", "must be an object, not " + TypeOf(*t));
    for (const auto& [transport, scopes] : t->items()) {
      const std::string tw = "transports." + transport;
      if (!scopes.is_object()) return FieldError(c, tw, "must be an object of scopes, not " + TypeOf(scopes));
      for (const auto& [scope, list] : scopes.items()) {
        const std::string sw = tw + "[" + Quote(scope) + "]";
        if (transport == "docker") {
          PC_ASSIGN_OR_RETURN(Requirements reqs, ParseList(c, sw, list));
          docker.emplace(scope, std::move(reqs));
        } else {
          PC_RETURN_IF_ERROR(CheckForeignList(c, sw, list));
        }
      }
      if (transport != "docker") ignored.push_back(transport);
    }
  }
  return std::shared_ptr<const Policy>(std::make_shared<ContainersPolicy>(
      origin, VersionOf(version_parts), std::move(def), std::move(docker), std::move(ignored)));
}

}  // namespace portcullis::verifier::internal
