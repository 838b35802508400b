#include "verifier/signatures.h"

#include "oci/registry_read.h"

namespace portcullis::verifier {

std::string SignatureTag(const oci::Digest& digest) { return digest.algorithm() + "-" + digest.hex() + ".sig"; }

LookupBudget::LookupBudget(const LookupLimits& limits)
    : limits_(limits), deadline_(std::chrono::steady_clock::now() + limits.time_budget) {}

Status LookupBudget::CheckTime(const std::string& what) const {
  if (std::chrono::steady_clock::now() <= deadline_) return Status::Ok();
  return Status::LimitExceeded("signature lookup exceeded its time budget of " +
                               std::to_string(limits_.time_budget.count()) + " ms (" + what + ")");
}

Status LookupBudget::CheckLayerCount(size_t n, const std::string& where) const {
  if (n <= limits_.max_layers_per_manifest) return Status::Ok();
  return Status::LimitExceeded("signature lookup exceeded its limits: " + where + " has " + std::to_string(n) +
                               " signature layers, more than " + std::to_string(limits_.max_layers_per_manifest));
}

const LookupBudget::Payload* LookupBudget::Cached(const oci::Digest& digest) const {
  auto it = payloads_.find(digest);
  return it == payloads_.end() ? nullptr : &it->second;
}

Status LookupBudget::Reserve(const oci::Digest& digest) {
  if (payloads_.count(digest)) return Status::Ok();
  if (reserved_ >= limits_.max_payloads) {
    return Status::LimitExceeded("signature lookup exceeded its limits: more than " +
                                 std::to_string(limits_.max_payloads) + " distinct signature payloads");
  }
  ++reserved_;
  return Status::Ok();
}

void LookupBudget::Store(const oci::Digest& digest, Payload p) { payloads_[digest] = std::move(p); }

namespace {

// The layers of `m` that `want` selects, blobs at most `max_bytes`, fetched once
// per digest within `budget`.
StatusOr<std::vector<SignatureLayer>> ReadLayers(oci::RegistryClient& client, const std::string& repo,
                                                 const oci::Manifest& m, const std::string& scope,
                                                 const std::string& where, LookupBudget& budget,
                                                 bool (*want)(std::string_view), size_t max_bytes, bool bundle) {
  size_t n = 0;
  for (const oci::Descriptor& d : m.layers) n += want(d.media_type);
  PC_RETURN_IF_ERROR(budget.CheckLayerCount(n, where));
  std::vector<SignatureLayer> out;
  for (const oci::Descriptor& d : m.layers) {
    if (!want(d.media_type)) continue;
    SignatureLayer l;
    l.bundle = bundle;
    l.layer_digest = d.digest;
    l.size = d.size;
    l.annotations = d.annotations;
    if (auto it = d.annotations.find(std::string(kSignatureAnnotation)); it != d.annotations.end() && !bundle) {
      l.signature_b64 = it->second;
    }
    if (d.size < 0 || d.size > static_cast<int64_t>(max_bytes)) {
      l.problem = (bundle ? "bundle is " : "payload is ") + std::to_string(d.size) + " bytes, over the limit of " +
                  std::to_string(max_bytes);
      out.push_back(std::move(l));
      continue;
    }
    const LookupBudget::Payload* p = budget.Cached(d.digest);
    if (p == nullptr) {
      PC_RETURN_IF_ERROR(budget.CheckTime("reading the payloads of " + where));
      PC_RETURN_IF_ERROR(budget.Reserve(d.digest));
      LookupBudget::Payload fetched;
      auto blob = oci::GetBlob(client, repo, d.digest, max_bytes, scope);
      if (!blob.ok()) {
        const Status& st = blob.status();
        if (!st.Is(Code::kBlobUnknown) && !st.Is(Code::kDigestInvalid) && !st.Is(Code::kSizeInvalid)) return st;
        fetched.problem = st.message();
      } else {
        fetched.bytes = std::move(*blob);
      }
      budget.Store(d.digest, std::move(fetched));
      p = budget.Cached(d.digest);
    }
    if (!p->problem.empty()) {
      l.problem = p->problem;
    } else if (static_cast<int64_t>(p->bytes.size()) != d.size) {
      l.problem = "payload is " + std::to_string(p->bytes.size()) + " bytes, the layer descriptor says " +
                  std::to_string(d.size);
    } else {
      l.payload = p->bytes;
    }
    out.push_back(std::move(l));
  }
  return out;
}

bool IsSimpleSigning(std::string_view media_type) { return media_type == kSimpleSigningMediaType; }

}  // namespace

bool IsSigstoreBundleMediaType(std::string_view media_type) {
  return media_type == kSigstoreBundleMediaType || media_type == kSigstoreBundleMediaTypeV03;
}

StatusOr<std::vector<SignatureLayer>> ReadSignatureLayers(oci::RegistryClient& client, const std::string& repo,
                                                          const oci::Manifest& m, const std::string& scope,
                                                          const std::string& where, LookupBudget& budget) {
  return ReadLayers(client, repo, m, scope, where, budget, IsSimpleSigning, kMaxPayloadBytes, false);
}

StatusOr<std::vector<SignatureLayer>> ReadBundleLayers(oci::RegistryClient& client, const std::string& repo,
                                                       const oci::Manifest& m, const std::string& scope,
                                                       const std::string& where, LookupBudget& budget) {
  return ReadLayers(client, repo, m, scope, where, budget, IsSigstoreBundleMediaType, kMaxBundleLayerBytes, true);
}

StatusOr<std::vector<SignatureLayer>> FindSignatures(oci::RegistryClient& client, const std::string& repo,
                                                     const oci::Digest& digest, const std::string& scope,
                                                     LookupBudget* budget) {
  LookupBudget own;
  LookupBudget& b = budget ? *budget : own;
  const std::string tag = SignatureTag(digest);
  PC_RETURN_IF_ERROR(b.CheckTime("reading " + tag));
  PC_ASSIGN_OR_RETURN(std::optional<oci::FetchedManifest> m, oci::GetManifest(client, repo, tag, scope));
  if (!m) return std::vector<SignatureLayer>();
  auto parsed = oci::ParseManifest(m->bytes, m->media_type);
  if (!parsed.ok()) return parsed.status().Annotate(repo + ":" + tag);
  if (parsed->IsIndex()) return Status::ManifestInvalid(repo + ":" + tag + " is an index, not a signature manifest");
  return ReadSignatureLayers(client, repo, *parsed, scope, "tag " + tag, b);
}

VerificationReport VerifySignatures(const std::vector<SignatureLayer>& layers, const keys::PublicKey& key,
                                    const oci::Digest& digest) {
  VerificationReport report;
  for (const SignatureLayer& l : layers) {
    if (l.bundle) {
      report.rejected.push_back({l.layer_digest, "a Sigstore bundle, not a simple-signing signature"});
      continue;
    }
    if (!l.problem.empty()) {
      report.rejected.push_back({l.layer_digest, l.problem});
      continue;
    }
    auto p = VerifySimpleSigning(l.payload, l.signature_b64, key, digest);
    if (!p.ok()) {
      report.rejected.push_back({l.layer_digest, p.status().message()});
      continue;
    }
    report.verified.push_back({l.layer_digest, l.payload, std::move(*p)});
  }
  return report;
}

}  // namespace portcullis::verifier
