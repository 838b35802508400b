#include "signer/sign.h"

#include <set>

#include "oci/base64.h"
#include "oci/manifest.h"
#include "signer/payload.h"
#include "signer/sig_manifest.h"
#include "oci/registry_read.h"
#include "verifier/signatures.h"

namespace portcullis::signer {

namespace {

// cosign's dupe detector (pkg/cosign/remote): same digest and media type, every
// new annotation but the signature present with the same value, and the
// existing signature verifies with our key over the payload.
bool IsDuplicate(const GoDescriptor& existing, const GoDescriptor& fresh, std::string_view payload,
                 const keys::PublicKey& pub) {
  if (existing.digest != fresh.digest || existing.media_type != fresh.media_type) return false;
  for (const auto& [k, v] : fresh.annotations) {
    if (k == verifier::kSignatureAnnotation) continue;
    auto it = existing.annotations.find(k);
    if (it == existing.annotations.end() || it->second != v) return false;
  }
  auto sig = existing.annotations.find(std::string(verifier::kSignatureAnnotation));
  if (sig == existing.annotations.end()) return false;
  auto raw = oci::Base64Decode(sig->second);
  return raw && pub.Verify(payload, *raw).ok();
}

size_t CountSimpleSigning(const SigManifest& m) {
  size_t n = 0;
  for (const auto& l : m.layers) n += l.media_type == verifier::kSimpleSigningMediaType ? 1 : 0;
  return n;
}

Status Walk(Pusher& pusher, const oci::Digest& digest, const SignRequest& request, const keys::PrivateKey& key,
            std::set<oci::Digest>& seen, std::vector<SignedImage>& out, int depth) {
  if (!seen.insert(digest).second) return Status::Ok();
  PC_ASSIGN_OR_RETURN(SignedImage s, SignDigest(pusher, digest, request, key));
  out.push_back(std::move(s));
  if (!request.recursive) return Status::Ok();
  if (depth > 8) return Status::ManifestInvalid("indexes nested too deeply under " + digest.ToString());
  PC_ASSIGN_OR_RETURN(auto m, oci::GetManifest(pusher.client(), pusher.repo(), digest.ToString(), pusher.scope()));
  if (!m) return Status::ManifestUnknown("manifest " + digest.ToString() + " vanished from " + pusher.repo());
  PC_ASSIGN_OR_RETURN(oci::Manifest parsed, oci::ParseManifest(m->bytes, m->media_type));
  if (!parsed.IsIndex()) return Status::Ok();
  for (const oci::Descriptor& child : parsed.manifests) {
    PC_RETURN_IF_ERROR(Walk(pusher, child.digest, request, key, seen, out, depth + 1));
  }
  return Status::Ok();
}

}  // namespace

StatusOr<SignedImage> SignDigest(Pusher& pusher, const oci::Digest& digest, const SignRequest& request,
                                 const keys::PrivateKey& key) {
  SignedImage result;
  result.image_digest = digest;
  result.signature_tag = verifier::SignatureTag(digest);

  const std::string payload = BuildPayload(request.docker_reference, digest, request.annotations);
  PC_ASSIGN_OR_RETURN(std::string sig, key.Sign(payload));
  result.payload_digest = oci::Digest::Sha256Of(payload);

  GoDescriptor layer;
  layer.media_type = std::string(verifier::kSimpleSigningMediaType);
  layer.size = static_cast<int64_t>(payload.size());
  layer.digest = result.payload_digest.ToString();
  layer.annotations[std::string(verifier::kSignatureAnnotation)] = oci::Base64Encode(sig);

  SigManifest manifest;
  manifest.config.media_type = std::string(oci::kOciEmptyConfig);
  PC_ASSIGN_OR_RETURN(auto existing,
                      oci::GetManifest(pusher.client(), pusher.repo(), result.signature_tag, pusher.scope()));
  if (existing) {
    auto parsed = ParseSigManifest(existing->bytes);
    if (!parsed.ok()) return parsed.status().Annotate(pusher.repo() + ":" + result.signature_tag);
    manifest = std::move(*parsed);
    if (manifest.media_type.empty()) manifest.media_type = existing->media_type;
    if (manifest.media_type.empty()) manifest.media_type = std::string(oci::kOciManifest);
    PC_ASSIGN_OR_RETURN(keys::PublicKey pub, key.GetPublicKey());
    for (const GoDescriptor& l : manifest.layers) {
      if (IsDuplicate(l, layer, payload, pub)) {
        result.signature_manifest_digest = existing->digest;
        result.signature_layers = CountSimpleSigning(manifest);
        return result;
      }
    }
  }
  manifest.layers.push_back(layer);

  std::vector<std::string> diff_ids;
  for (const GoDescriptor& l : manifest.layers) diff_ids.push_back(l.digest);
  const std::string config = SigConfigBlob(diff_ids);
  const oci::Digest config_digest = oci::Digest::Sha256Of(config);
  manifest.config.size = static_cast<int64_t>(config.size());
  manifest.config.digest = config_digest.ToString();
  if (manifest.config.media_type.empty()) manifest.config.media_type = std::string(oci::kOciEmptyConfig);

  PC_RETURN_IF_ERROR(pusher.PushBlob(result.payload_digest, payload).status());
  PC_RETURN_IF_ERROR(pusher.PushBlob(config_digest, config).status());
  const std::string bytes = MarshalSigManifest(manifest);
  PC_ASSIGN_OR_RETURN(result.signature_manifest_digest,
                      pusher.PushManifest(bytes, manifest.media_type, result.signature_tag));
  result.layer_added = true;
  result.signature_layers = CountSimpleSigning(manifest);
  return result;
}

StatusOr<std::vector<SignedImage>> SignImage(Pusher& pusher, const oci::Digest& digest, const SignRequest& request,
                                             const keys::PrivateKey& key) {
  std::vector<SignedImage> out;
  std::set<oci::Digest> seen;
  PC_RETURN_IF_ERROR(Walk(pusher, digest, request, key, seen, out, 0));
  return out;
}

}  // namespace portcullis::signer
