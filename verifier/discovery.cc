#include "verifier/discovery.h"

#include <set>

#include "oci/manifest.h"
#include "oci/registry_read.h"
#include "oci/remote.h"

namespace portcullis::verifier {

namespace {

// Reads the cosign signature and Sigstore bundle referrers among `descriptors` (from the referrers
// API or the fallback index) into `out`.
Status ReadReferrers(oci::RegistryClient& client, const std::string& repo, const std::string& scope,
                     const oci::Digest& subject, const std::vector<oci::Descriptor>& descriptors,
                     const std::string& via, std::set<oci::Digest>& seen, LookupBudget& budget,
                     std::vector<FoundSignature>& out) {
  for (const oci::Descriptor& d : descriptors) {
    if (!d.artifact_type.empty() && d.artifact_type != kCosignSignatureArtifactType &&
        !IsSigstoreBundleMediaType(d.artifact_type)) {
      continue;
    }
    if (d.media_type != oci::kOciManifest && d.media_type != oci::kDockerManifest && !d.media_type.empty()) continue;
    if (!seen.insert(d.digest).second) continue;
    if (seen.size() > budget.limits().max_referrers) {
      return Status::LimitExceeded("signature lookup exceeded its limits: more than " +
                                   std::to_string(budget.limits().max_referrers) + " signature referrers");
    }
    PC_RETURN_IF_ERROR(budget.CheckTime("reading referrer " + d.digest.ToString()));
    PC_ASSIGN_OR_RETURN(std::optional<oci::FetchedManifest> fetched, oci::GetManifest(client, repo, d.digest.ToString(), scope));
    if (!fetched) continue;  // listed but gone: nothing to verify
    auto m = oci::ParseManifest(fetched->bytes, fetched->media_type);
    if (!m.ok() || m->IsIndex()) continue;
    const bool cosign =
        m->artifact_type == kCosignSignatureArtifactType ||
        (m->artifact_type.empty() && m->config && m->config->media_type == kCosignSignatureArtifactType);
    // cosign v3: artifactType is the bundle media type; the bundle is a layer.
    const bool bundle = IsSigstoreBundleMediaType(m->artifact_type);
    if (!cosign && !bundle) continue;
    if (!m->subject || m->subject->digest != subject) continue;  // not about this image
    const std::string where = via + d.digest.ToString();
    PC_ASSIGN_OR_RETURN(std::vector<SignatureLayer> layers,
                        bundle ? ReadBundleLayers(client, repo, *m, scope, where, budget)
                               : ReadSignatureLayers(client, repo, *m, scope, where, budget));
    for (auto& l : layers) {
      FoundSignature f;
      static_cast<SignatureLayer&>(f) = std::move(l);
      f.source = where;
      out.push_back(std::move(f));
    }
  }
  return Status::Ok();
}

}  // namespace

SignatureSource::~SignatureSource() = default;

std::string ReferrersFallbackTag(const oci::Digest& digest) { return digest.algorithm() + "-" + digest.hex(); }

RegistrySignatureSource::RegistrySignatureSource(oci::RegistryClient& client, std::string repo, std::string scope,
                                                 LookupLimits limits)
    : client_(client), repo_(std::move(repo)), scope_(std::move(scope)), limits_(limits) {
  if (scope_.empty()) scope_ = oci::PullScope(repo_);
}

StatusOr<std::vector<FoundSignature>> RegistrySignatureSource::Find(const oci::Digest& digest) {
  std::vector<FoundSignature> out;
  std::set<oci::Digest> seen;
  LookupBudget budget(limits_);

  // 1. The referrers API.
  oci::HttpRequest req;
  req.method = "GET";
  req.target = "/v2/" + repo_ + "/referrers/" + digest.ToString();
  req.headers.emplace("Accept", std::string(oci::kOciIndex));
  req.scope = scope_;
  PC_ASSIGN_OR_RETURN(oci::HttpResponse r, client_.Do(req, oci::kMaxManifestBytes));
  std::optional<oci::Manifest> index;
  if (r.status == 200) {
    std::string ct = oci::HeaderValue(r.headers, "Content-Type");
    auto m = oci::ParseManifest(r.body, ct.starts_with("application/vnd.oci.image.index") ? ct : "");
    if (m.ok() && m->IsIndex()) index = std::move(*m);
  } else if (r.status != 404 && r.status != 405 && r.status != 400 && r.status != 501) {
    return oci::HttpError("GET " + req.target, r);
  }
  referrers_api_ = index.has_value();
  if (index) {
    PC_RETURN_IF_ERROR(ReadReferrers(client_, repo_, scope_, digest, index->manifests, "referrer ", seen, budget, out));
  } else {
    // 2. No referrers API: the fallback tag.
    const std::string tag = ReferrersFallbackTag(digest);
    PC_RETURN_IF_ERROR(budget.CheckTime("reading " + tag));
    PC_ASSIGN_OR_RETURN(std::optional<oci::FetchedManifest> fetched, oci::GetManifest(client_, repo_, tag, scope_));
    if (fetched) {
      auto m = oci::ParseManifest(fetched->bytes, fetched->media_type);
      if (m.ok() && m->IsIndex()) {
        PC_RETURN_IF_ERROR(
            ReadReferrers(client_, repo_, scope_, digest, m->manifests, "fallback tag " + tag + " -> ", seen, budget, out));
      }
    }
  }

  // 3. The legacy .sig tag.
  PC_ASSIGN_OR_RETURN(std::vector<SignatureLayer> legacy, FindSignatures(client_, repo_, digest, scope_, &budget));
  for (SignatureLayer& l : legacy) {
    FoundSignature f;
    static_cast<SignatureLayer&>(f) = std::move(l);
    f.source = "tag " + SignatureTag(digest);
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace portcullis::verifier
