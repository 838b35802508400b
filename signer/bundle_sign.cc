#include "signer/bundle_sign.h"

#include <nlohmann/json.hpp>

#include "oci/base64.h"
#include "oci/manifest.h"
#include "verifier/discovery.h"
#include "oci/registry_read.h"
#include "verifier/signatures.h"

namespace portcullis::signer {

namespace {

using ojson = nlohmann::ordered_json;

// Raw bytes of a "sha256:<hex>" digest.
std::string RawDigest(const oci::Digest& d) {
  std::string out;
  const std::string& h = d.hex();
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}

// Whether the registry answers the referrers API for `digest`.
StatusOr<bool> HasReferrersApi(Pusher& pusher, const oci::Digest& digest) {
  oci::HttpRequest req;
  req.method = "GET";
  req.target = "/v2/" + pusher.repo() + "/referrers/" + digest.ToString();
  req.headers.emplace("Accept", std::string(oci::kOciIndex));
  req.scope = pusher.scope();
  PC_ASSIGN_OR_RETURN(oci::HttpResponse r, pusher.client().Do(req, oci::kMaxManifestBytes));
  if (r.status == 200) {
    auto m = oci::ParseManifest(r.body, std::string(oci::kOciIndex));
    return m.ok() && m->IsIndex();
  }
  if (r.status == 404 || r.status == 405 || r.status == 400 || r.status == 501) return false;
  return oci::HttpError("GET " + req.target, r);
}

}  // namespace

StatusOr<std::string> MakeKeyBundle(std::string_view manifest, const keys::PrivateKey& key) {
  if (key.type() != keys::KeyType::kEcdsaP256 && key.type() != keys::KeyType::kRsa) {
    return Status::InvalidArgument(std::string("--bundle signs with an ECDSA P-256 or RSA key, not ") +
                                   std::string(keys::KeyTypeName(key.type())));
  }
  PC_ASSIGN_OR_RETURN(std::string sig, key.Sign(manifest));
  PC_ASSIGN_OR_RETURN(keys::PublicKey pub, key.GetPublicKey());
  PC_ASSIGN_OR_RETURN(std::string der, pub.Der());
  const oci::Digest digest = oci::Digest::Sha256Of(manifest);
  const oci::Digest key_id = oci::Digest::Sha256Of(der);
  ojson b = {{"mediaType", std::string(verifier::kSigstoreBundleMediaType)},
             {"verificationMaterial", {{"publicKey", {{"hint", oci::Base64Encode(RawDigest(key_id))}}}}},
             {"messageSignature",
              {{"messageDigest", {{"algorithm", "SHA2_256"}, {"digest", oci::Base64Encode(RawDigest(digest))}}},
               {"signature", oci::Base64Encode(sig)}}}};
  return b.dump();
}

StatusOr<BundleSigned> SignDigestBundle(Pusher& pusher, const oci::Digest& digest, const keys::PrivateKey& key,
                                        const std::string& created) {
  PC_ASSIGN_OR_RETURN(auto image, oci::GetManifest(pusher.client(), pusher.repo(), digest.ToString(),
                                                        pusher.scope()));
  if (!image) return Status::ManifestUnknown("manifest " + digest.ToString() + " is not in " + pusher.repo());
  PC_ASSIGN_OR_RETURN(std::string bundle, MakeKeyBundle(image->bytes, key));
  BundleSigned out;
  out.image_digest = digest;
  out.bundle_digest = oci::Digest::Sha256Of(bundle);
  const std::string empty = "{}";
  const oci::Digest empty_digest = oci::Digest::Sha256Of(empty);
  PC_RETURN_IF_ERROR(pusher.PushBlob(empty_digest, empty).status());
  PC_RETURN_IF_ERROR(pusher.PushBlob(out.bundle_digest, bundle).status());

  const std::string bundle_type(verifier::kSigstoreBundleMediaType);
  const ojson annotations = {{"dev.sigstore.bundle.content", "message-signature"},
                             {"org.opencontainers.image.created", created}};
  ojson m = {{"schemaVersion", 2},
             {"mediaType", std::string(oci::kOciManifest)},
             {"artifactType", bundle_type},
             {"config", {{"mediaType", std::string(kEmptyMediaType)}, {"digest", empty_digest.ToString()}, {"size", 2}}},
             {"layers",
              ojson::array({{{"mediaType", bundle_type},
                             {"digest", out.bundle_digest.ToString()},
                             {"size", bundle.size()}}})},
             {"subject",
              {{"mediaType", image->media_type}, {"digest", digest.ToString()}, {"size", image->bytes.size()}}},
             {"annotations", annotations}};
  const std::string manifest = m.dump();
  PC_ASSIGN_OR_RETURN(out.referrer_digest,
                      pusher.PushManifest(manifest, oci::kOciManifest, oci::Digest::Sha256Of(manifest).ToString()));

  PC_ASSIGN_OR_RETURN(out.referrers_api, HasReferrersApi(pusher, digest));
  if (out.referrers_api) return out;

  // No referrers API: the fallback index under sha256-<hex>.
  out.fallback_tag = verifier::ReferrersFallbackTag(digest);
  ojson index = {{"schemaVersion", 2}, {"mediaType", std::string(oci::kOciIndex)}, {"manifests", ojson::array()}};
  PC_ASSIGN_OR_RETURN(auto existing, oci::GetManifest(pusher.client(), pusher.repo(), out.fallback_tag,
                                                           pusher.scope()));
  if (existing) {
    auto parsed = oci::ParseManifest(existing->bytes, existing->media_type);
    ojson j = ojson::parse(existing->bytes, nullptr, false);
    if (!parsed.ok() || !parsed->IsIndex() || j.is_discarded() || !j.is_object() || !j.contains("manifests") ||
        !j["manifests"].is_array()) {
      return Status::ManifestInvalid(pusher.repo() + ":" + out.fallback_tag +
                                     " exists and is not an image index; not overwriting it");
    }
    index = std::move(j);
  }
  bool present = false;
  for (const auto& e : index["manifests"]) {
    auto d = e.is_object() ? e.find("digest") : e.end();
    present = present || (d != e.end() && d->is_string() && *d == out.referrer_digest.ToString());
  }
  if (!present) {
    index["manifests"].push_back({{"mediaType", std::string(oci::kOciManifest)},
                                  {"digest", out.referrer_digest.ToString()},
                                  {"size", manifest.size()},
                                  {"artifactType", bundle_type},
                                  {"annotations", annotations}});
  }
  out.fallback_entries = index["manifests"].size();
  const std::string index_bytes = index.dump();
  PC_RETURN_IF_ERROR(pusher.PushManifest(index_bytes, oci::kOciIndex, out.fallback_tag).status());
  return out;
}

}  // namespace portcullis::signer
