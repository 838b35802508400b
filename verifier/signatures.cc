#include "verifier/signatures.h"

#include "oci/manifest.h"
#include "verifier/registry_read.h"

namespace portcullis::verifier {

std::string SignatureTag(const oci::Digest& digest) { return digest.algorithm() + "-" + digest.hex() + ".sig"; }

StatusOr<std::vector<SignatureLayer>> FindSignatures(oci::RegistryClient& client, const std::string& repo,
                                                     const oci::Digest& digest, const std::string& scope) {
  std::vector<SignatureLayer> out;
  const std::string tag = SignatureTag(digest);
  PC_ASSIGN_OR_RETURN(std::optional<FetchedManifest> m, GetManifest(client, repo, tag, scope));
  if (!m) return out;
  auto parsed = oci::ParseManifest(m->bytes, m->media_type);
  if (!parsed.ok()) return parsed.status().Annotate(repo + ":" + tag);
  if (parsed->IsIndex()) return Status::ManifestInvalid(repo + ":" + tag + " is an index, not a signature manifest");
  for (const oci::Descriptor& d : parsed->layers) {
    if (d.media_type != kSimpleSigningMediaType) continue;
    SignatureLayer l;
    l.layer_digest = d.digest;
    l.size = d.size;
    l.annotations = d.annotations;
    if (auto it = d.annotations.find(std::string(kSignatureAnnotation)); it != d.annotations.end()) {
      l.signature_b64 = it->second;
    }
    if (d.size > static_cast<int64_t>(kMaxPayloadBytes)) {
      l.problem = "payload is " + std::to_string(d.size) + " bytes, over the limit";
      out.push_back(std::move(l));
      continue;
    }
    auto blob = GetBlob(client, repo, d.digest, kMaxPayloadBytes, scope);
    if (!blob.ok()) {
      const Status& st = blob.status();
      if (!st.Is(Code::kBlobUnknown) && !st.Is(Code::kDigestInvalid) && !st.Is(Code::kSizeInvalid)) return st;
      l.problem = st.message();
    } else if (static_cast<int64_t>(blob->size()) != d.size) {
      l.problem =
          "payload is " + std::to_string(blob->size()) + " bytes, the layer descriptor says " + std::to_string(d.size);
    } else {
      l.payload = std::move(*blob);
    }
    out.push_back(std::move(l));
  }
  return out;
}

VerificationReport VerifySignatures(const std::vector<SignatureLayer>& layers, const keys::PublicKey& key,
                                    const oci::Digest& digest) {
  VerificationReport report;
  for (const SignatureLayer& l : layers) {
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
