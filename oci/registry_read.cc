#include "oci/registry_read.h"

#include <nlohmann/json.hpp>

#include "oci/json_fields.h"
#include "oci/manifest.h"
#include "oci/remote.h"

namespace portcullis::oci {

namespace {

std::string ContentTypeOf(const Headers& h) {
  std::string ct = HeaderValue(h, "Content-Type");
  if (auto semi = ct.find(';'); semi != std::string::npos) ct.resize(semi);
  while (!ct.empty() && (ct.back() == ' ' || ct.back() == '\t')) ct.pop_back();
  return ct;
}

std::string ScopeOr(const std::string& scope, const std::string& repo) {
  return scope.empty() ? PullScope(repo) : scope;
}

}  // namespace

Status HttpError(const std::string& what, const HttpResponse& r) {
  std::string msg = what + ": HTTP " + std::to_string(r.status);
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    auto errs = j.find("errors");
    if (errs != j.end() && errs->is_array() && !errs->empty() && (*errs)[0].is_object()) {
      const auto& e = (*errs)[0];
      std::string code = StringField(e, "code").value_or(""), text = StringField(e, "message").value_or("");
      code = code.substr(0, 100);
      text = text.substr(0, 400);
      if (!code.empty()) msg += " " + code;
      if (!text.empty()) msg += ": " + text;
    }
  }
  switch (r.status) {
    case 401:
      return Status::Unauthorized(msg + " (check the registry credentials)");
    case 403:
      return Status::Denied(msg);
    case 404:
      return Status::NotFound(msg);
    case 429:
      return Status::TooManyRequests(msg);
    default:
      break;
  }
  if (r.status >= 500) return Status::UpstreamUnavailable(msg);
  return Status::UpstreamInvalid(msg);
}

StatusOr<std::optional<FetchedManifest>> GetManifest(RegistryClient& client, const std::string& repo,
                                                     const std::string& ref, const std::string& scope) {
  HttpRequest req;
  req.method = "GET";
  req.target = "/v2/" + repo + "/manifests/" + ref;
  req.headers.emplace("Accept", ManifestAcceptHeader());
  req.scope = ScopeOr(scope, repo);
  PC_ASSIGN_OR_RETURN(HttpResponse r, client.Do(req, kMaxManifestBytes));
  if (r.status == 404) return std::optional<FetchedManifest>();
  if (r.status != 200) return HttpError("GET " + req.target, r);
  FetchedManifest m;
  m.bytes = std::move(r.body);
  m.digest = Digest::Sha256Of(m.bytes);
  m.media_type = ContentTypeOf(r.headers);
  if (m.media_type.empty() || m.media_type == "application/json" || m.media_type == "text/plain") {
    auto j = nlohmann::json::parse(m.bytes, nullptr, false);
    m.media_type = StringField(j, "mediaType").value_or("");
  }
  std::string header = HeaderValue(r.headers, "Docker-Content-Digest");
  if (!header.empty() && header.rfind("sha256:", 0) == 0 && header != m.digest.ToString()) {
    return Status::UpstreamInvalid("GET " + req.target + ": Docker-Content-Digest " + header +
                                   " does not match the body (" + m.digest.ToString() + ")");
  }
  if (ref.find(':') != std::string::npos) {
    PC_ASSIGN_OR_RETURN(Digest want, Digest::Parse(ref));
    if (want.algorithm() == "sha256" && want != m.digest) {
      return Status::DigestInvalid("GET " + req.target + ": body hashes to " + m.digest.ToString());
    }
  }
  return std::optional<FetchedManifest>(std::move(m));
}

StatusOr<Digest> ResolveDigest(RegistryClient& client, const std::string& repo, const std::string& ref,
                                    const std::string& scope) {
  HttpRequest req;
  req.method = "HEAD";
  req.target = "/v2/" + repo + "/manifests/" + ref;
  req.headers.emplace("Accept", ManifestAcceptHeader());
  req.scope = ScopeOr(scope, repo);
  PC_ASSIGN_OR_RETURN(HttpResponse r, client.Do(req));
  if (r.status == 404) return Status::ManifestUnknown("no manifest " + repo + ":" + ref + " in the registry");
  if (r.status == 200) {
    std::string header = HeaderValue(r.headers, "Docker-Content-Digest");
    if (!header.empty()) {
      auto d = Digest::Parse(header);
      if (!d.ok())
        return Status::UpstreamInvalid("HEAD " + req.target + ": bad Docker-Content-Digest \"" + header + "\"");
      return *d;
    }
  } else if (r.status != 405 && r.status != 400) {
    // Some registries refuse HEAD; GET below decides for them.
    return HttpError("HEAD " + req.target, r);
  }
  PC_ASSIGN_OR_RETURN(std::optional<FetchedManifest> m, GetManifest(client, repo, ref, scope));
  if (!m) return Status::ManifestUnknown("no manifest " + repo + ":" + ref + " in the registry");
  return m->digest;
}

StatusOr<std::string> GetBlob(RegistryClient& client, const std::string& repo, const Digest& digest,
                              size_t max_bytes, const std::string& scope) {
  HttpRequest req;
  req.method = "GET";
  req.target = "/v2/" + repo + "/blobs/" + digest.ToString();
  req.scope = ScopeOr(scope, repo);
  PC_ASSIGN_OR_RETURN(HttpResponse r, client.Do(req, max_bytes));
  if (r.status == 404) return Status::BlobUnknown("blob " + digest.ToString() + " is not in " + repo);
  if (r.status != 200) return HttpError("GET " + req.target, r);
  auto hasher = Hasher::Create(digest.algorithm());
  if (!hasher) return Status::DigestInvalid("unsupported digest algorithm " + digest.algorithm());
  hasher->Update(r.body);
  Digest got = hasher->Finish();
  if (got != digest) {
    return Status::DigestInvalid("blob " + digest.ToString() + " from " + repo + " hashes to " + got.ToString());
  }
  return std::move(r.body);
}

}  // namespace portcullis::oci
