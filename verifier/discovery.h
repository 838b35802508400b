// Where an image's cosign signatures are found (formats.md §2, §3):
//   1. the OCI 1.1 referrers API, GET /v2/<repo>/referrers/<digest>: manifests
//      whose subject is the image; cosign's have artifactType (or, in older cosign,
//      config mediaType) application/vnd.dev.cosign.artifact.sig.v1+json and the
//      same simple-signing layers as the .sig tag;
//   2. when the registry has no referrers API (404, 405, 400, 501 or an answer
//      that is not an image index), the fallback tag sha256-<hex> holding an OCI
//      index of those referrers (OCI distribution-spec's rule: the tag is read
//      only when the API is absent);
//   3. the legacy tag sha256-<hex>.sig (FindSignatures).
// In 1 and 2, cosign v3's Sigstore bundle referrers are read too: artifactType
// application/vnd.dev.sigstore.bundle.v0.3+json, the bundle JSON as a layer of
// that media type (at most kMaxBundleLayerBytes; each counts as a payload of the
// budget). They are found, not verified: bundle_check.h verifies them.
// Referrer manifests are fetched by digest (bytes checked) and must name the
// image as their subject; others are skipped. Errors only for real failures; LIMIT_EXCEEDED when
// the lookup passes a bound of its LookupLimits (the policy refuses then).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "oci/digest.h"
#include "oci/http_client.h"
#include "oci/status.h"
#include "verifier/signatures.h"

namespace portcullis::verifier {

inline constexpr std::string_view kCosignSignatureArtifactType = "application/vnd.dev.cosign.artifact.sig.v1+json";

// One signature found for an image: the simple-signing layer (payload bytes,
// base64 signature, annotations — for a legacy keyless .sig also the
// certificate, chain and bundle annotations — or the `problem` that kept the
// payload from being read), or a Sigstore bundle (`bundle` true, the JSON in
// `payload`), and where it was found ("tag sha256-<hex>.sig",
// "referrer sha256:<manifest digest>", "fallback tag sha256-<hex> → sha256:...").
struct FoundSignature : SignatureLayer {
  std::string source;
};

// Something that finds the signatures of an image digest. Implementations
// decide where to look; the policy engine calls Find at most once per Evaluate.
class SignatureSource {
 public:
  virtual ~SignatureSource();
  // Every signature found for `digest` (empty when there are none). Errors only
  // for real failures (registry unreachable, auth, protocol violations), never for
  // "no signatures".
  virtual StatusOr<std::vector<FoundSignature>> Find(const oci::Digest& digest) = 0;
};

// Finds signatures in a registry repository, in all three places above.
// `client` must outlive this object. `scope` is the token scope ("" =
// repository:<repo>:pull). Each Find is bounded by `limits` (signatures.h):
// past a bound it fails with LIMIT_EXCEEDED. Not thread-safe by itself
// (RegistryClient is); use one per evaluation or guard it.
class RegistrySignatureSource : public SignatureSource {
 public:
  RegistrySignatureSource(oci::RegistryClient& client, std::string repo, std::string scope = "",
                          LookupLimits limits = LookupLimits());
  StatusOr<std::vector<FoundSignature>> Find(const oci::Digest& digest) override;

  // After Find: whether the registry answered the referrers API (false: the
  // fallback tag was read instead).
  bool referrers_api() const { return referrers_api_; }

 private:
  oci::RegistryClient& client_;
  std::string repo_;
  std::string scope_;
  LookupLimits limits_;
  bool referrers_api_ = false;
};

// "sha256-<hex>": the referrers fallback tag of `digest`.
std::string ReferrersFallbackTag(const oci::Digest& digest);


}  // namespace portcullis::verifier
