// Discovering cosign signatures of an image and verifying them by key.
//
// FindSignatures reads the legacy tag mode (formats.md §2): the OCI manifest
// tagged sha256-<hex>.sig in the image's repository, one simple-signing layer
// per signature. discovery.h adds the referrers API and the fallback tag (§3) on
// top of the same layer reader; VerifySignatures works on whatever they find.
//
// Every lookup is bounded (LookupLimits): whoever can push to the upstream
// chooses how many layers a signature manifest has, so the number of layers,
// distinct payload blobs fetched, referrer manifests read and the wall time of
// one lookup are capped. Past a bound the lookup fails with LIMIT_EXCEEDED,
// which the policy engines turn into a refusal.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keys/key.h"
#include "oci/digest.h"
#include "oci/http_client.h"
#include "oci/manifest.h"
#include "oci/status.h"
#include "verifier/simple_signing.h"

namespace portcullis::verifier {

inline constexpr std::string_view kSimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json";
inline constexpr std::string_view kSignatureAnnotation = "dev.cosignproject.cosign/signature";
inline constexpr std::string_view kCertificateAnnotation = "dev.sigstore.cosign/certificate";
inline constexpr std::string_view kChainAnnotation = "dev.sigstore.cosign/chain";
inline constexpr std::string_view kBundleAnnotation = "dev.sigstore.cosign/bundle";

// Largest payload blob fetched (cosign's payloads are a few hundred bytes).
inline constexpr size_t kMaxPayloadBytes = 64 << 10;

// cosign v3 stores a Sigstore bundle as the single layer of a referrer whose
// artifactType is the same media type (both spellings of v0.3 are read).
inline constexpr std::string_view kSigstoreBundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json";
inline constexpr std::string_view kSigstoreBundleMediaTypeV03 = "application/vnd.dev.sigstore.bundle+json;version=0.3";
// Largest bundle blob fetched (a keyless bundle with its certificate and
// inclusion proof is a few KiB); each bundle counts as a payload of the budget.
inline constexpr size_t kMaxBundleLayerBytes = 1 << 20;
bool IsSigstoreBundleMediaType(std::string_view media_type);

// Bounds on the work of one signature lookup (one policy decision).
struct LookupLimits {
  size_t max_layers_per_manifest = 128;  // signature layers in one .sig / referrer manifest
  size_t max_payloads = 64;              // distinct payload blobs fetched
  size_t max_referrers = 64;             // referrer manifests read
  std::chrono::milliseconds time_budget{30000};
};

// The state of one lookup against its limits: the deadline, and the payloads
// already fetched (a payload digest named by many layers is fetched once).
// Not thread-safe; one per lookup.
class LookupBudget {
 public:
  explicit LookupBudget(const LookupLimits& limits = LookupLimits());
  const LookupLimits& limits() const { return limits_; }
  // LIMIT_EXCEEDED once the time budget is spent; `what` names the step.
  Status CheckTime(const std::string& what) const;
  // LIMIT_EXCEEDED when `n` signature layers in one manifest are too many.
  Status CheckLayerCount(size_t n, const std::string& where) const;

  struct Payload {
    std::string bytes;
    std::string problem;
  };
  // The payload already fetched for `digest`, or nullptr.
  const Payload* Cached(const oci::Digest& digest) const;
  // Records a fetched payload; LIMIT_EXCEEDED past max_payloads distinct ones
  // (checked before fetching: call Reserve first).
  Status Reserve(const oci::Digest& digest);
  void Store(const oci::Digest& digest, Payload p);

 private:
  LookupLimits limits_;
  std::chrono::steady_clock::time_point deadline_;
  std::map<oci::Digest, Payload> payloads_;
  size_t reserved_ = 0;
};

// "sha256-<hex>.sig": the tag cosign stores the signatures of `digest` under.
std::string SignatureTag(const oci::Digest& digest);

// One simple-signing layer of a signature manifest, or (bundle = true) one
// Sigstore bundle layer of a cosign v3 referrer.
struct SignatureLayer {
  oci::Digest layer_digest;
  int64_t size = 0;
  std::map<std::string, std::string> annotations;
  std::string signature_b64;  // the kSignatureAnnotation value ("" when absent; always "" for bundles)
  std::string payload;        // the layer blob, digest and size checked; "" when `problem` is set
  std::string problem;        // why the payload could not be had ("" when it was)
  // A Sigstore bundle: `payload` holds the bundle JSON (unverified). Key-based
  // simple-signing checks never use such a layer (signature_check.h).
  bool bundle = false;
};

// The simple-signing layers stored for `digest` in `repo` under its .sig tag,
// in manifest order (layers of other media types are skipped). Empty when the
// tag does not exist. A payload blob that is missing, of the wrong size or
// digest sets that layer's `problem` and the others are still returned.
// Errors: transport, auth, a .sig manifest that is not an image manifest;
// LIMIT_EXCEEDED past a bound of `budget` (a fresh default budget when null).
StatusOr<std::vector<SignatureLayer>> FindSignatures(oci::RegistryClient& client, const std::string& repo,
                                                     const oci::Digest& digest, const std::string& scope = "",
                                                     LookupBudget* budget = nullptr);

// The simple-signing layers of the signature manifest `m` in `repo`, payloads
// fetched (each distinct payload once) and checked against their descriptors;
// payload problems go into each layer's `problem`. Errors as FindSignatures.
StatusOr<std::vector<SignatureLayer>> ReadSignatureLayers(oci::RegistryClient& client, const std::string& repo,
                                                          const oci::Manifest& m, const std::string& scope,
                                                          const std::string& where, LookupBudget& budget);

// The Sigstore bundle layers of the referrer manifest `m` (media types
// IsSigstoreBundleMediaType), each blob at most kMaxBundleLayerBytes (a larger one
// gets a `problem` and is not fetched), fetched once per digest and counted as
// payloads of `budget`. Errors as FindSignatures.
StatusOr<std::vector<SignatureLayer>> ReadBundleLayers(oci::RegistryClient& client, const std::string& repo,
                                                       const oci::Manifest& m, const std::string& scope,
                                                       const std::string& where, LookupBudget& budget);

struct VerifiedSignature {
  oci::Digest layer_digest;
  std::string payload;  // the signed bytes
  SimpleSigningPayload parsed;
};

struct RejectedSignature {
  oci::Digest layer_digest;
  std::string reason;
};

struct VerificationReport {
  std::vector<VerifiedSignature> verified;
  std::vector<RejectedSignature> rejected;
  bool ok() const { return !verified.empty(); }
};

// VerifySimpleSigning on each layer with `key` against `digest`.
VerificationReport VerifySignatures(const std::vector<SignatureLayer>& layers, const keys::PublicKey& key,
                                    const oci::Digest& digest);

}  // namespace portcullis::verifier
